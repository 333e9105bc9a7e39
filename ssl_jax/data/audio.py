"""Audio features computed without learning: log-mel spectrograms and MFCCs (NumPy/SciPy).

The no-learning baseline the readout compares audio representations with, as pixels are for
images: `mfcc_features` pools the MFCCs of each waveform over time.

Steps (defaults for 16 kHz speech): frames of 25 ms (400 samples) every 10 ms (160 samples),
Hann window, |FFT|² over 512 points (`power_spectrogram`) → 40 triangular filters equally
spaced on the mel scale m(f) = 2595 log10(1 + f / 700) from 20 Hz to the Nyquist frequency
(`mel_filterbank`) → log(· + 1e-10) (`log_mel_spectrogram`) → orthonormal DCT-II over the
mel axis, the first 13 coefficients (`mfcc`).
"""

import numpy as np
from scipy.fft import dct


def hz_to_mel(f):
    """The HTK mel scale: m = 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate, n_fft=512, n_mels=40, f_min=20.0, f_max=None) -> np.ndarray:
    """[n_fft // 2 + 1, n_mels] triangular filters: filter j rises linearly from mel centre
    c_{j-1} to 1 at c_j and falls to 0 at c_{j+1}, the n_mels + 2 edges equally spaced in mel."""
    f_max = sample_rate / 2 if f_max is None else f_max
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)[:, None]  # [F, 1] Hz of each FFT bin
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def frame(waveforms, frame_length, hop_length) -> np.ndarray:
    """[..., T] → [..., num_frames, frame_length], num_frames = 1 + (T − frame_length) // hop."""
    waveforms = np.asarray(waveforms)
    count = 1 + (waveforms.shape[-1] - frame_length) // hop_length
    index = np.arange(count)[:, None] * hop_length + np.arange(frame_length)[None, :]
    return waveforms[..., index]


def power_spectrogram(waveforms, n_fft=512, win_length=400, hop_length=160) -> np.ndarray:
    """[..., T] → [..., num_frames, n_fft // 2 + 1]: |rfft(Hann-windowed frame, n_fft)|²."""
    frames = frame(np.asarray(waveforms, np.float32), win_length, hop_length)
    window = np.hanning(win_length + 2)[1:-1].astype(np.float32)  # no zero end points
    spectrum = np.fft.rfft(frames * window, n=n_fft, axis=-1)
    return (spectrum.real**2 + spectrum.imag**2).astype(np.float32)


def log_mel_spectrogram(
    waveforms, sample_rate, n_fft=512, win_length=400, hop_length=160, n_mels=40, eps=1e-10
) -> np.ndarray:
    """[..., T] float waveforms → [..., num_frames, n_mels] log mel energies."""
    power = power_spectrogram(waveforms, n_fft, win_length, hop_length)
    # One 2-D product: NumPy runs a stacked [..., F] @ [F, M] as one small product per leading
    # index, 60× slower here.
    mel = power.reshape(-1, power.shape[-1]) @ mel_filterbank(sample_rate, n_fft, n_mels)
    mel = mel.reshape(*power.shape[:-1], n_mels)
    return np.log(mel + eps).astype(np.float32)


def mfcc(waveforms, sample_rate, n_mfcc=13, **mel_options) -> np.ndarray:
    """[..., T] → [..., num_frames, n_mfcc]: orthonormal DCT-II of the log mel energies."""
    log_mel = log_mel_spectrogram(waveforms, sample_rate, **mel_options)
    return dct(log_mel, type=2, norm="ortho", axis=-1)[..., :n_mfcc].astype(np.float32)


def deltas(features, width=2) -> np.ndarray:
    """Time derivative of [..., frames, D] by the usual regression over ±``width`` frames:
    d_t = Σ_n n (x_{t+n} − x_{t−n}) / (2 Σ_n n²), edges repeated."""
    pad = [(0, 0)] * (features.ndim - 2) + [(width, width), (0, 0)]
    padded = np.pad(features, pad, mode="edge")
    frames = features.shape[-2]
    total = sum(
        n
        * (
            padded[..., width + n : width + n + frames, :]
            - padded[..., width - n : width - n + frames, :]
        )
        for n in range(1, width + 1)
    )
    return (total / (2 * sum(n * n for n in range(1, width + 1)))).astype(np.float32)


def mfcc_features(waveforms, sample_rate, n_mfcc=13, chunk_size=256) -> np.ndarray:
    """The no-learning baseline: float32 waveforms [N, T] → np.float32 [N, 4 · n_mfcc].

    The time mean and standard deviation of each MFCC and of its delta, concatenated
    ([mean(c), std(c), mean(Δc), std(Δc)]); computed ``chunk_size`` waveforms at a time.
    """
    waveforms = np.asarray(waveforms, np.float32)
    out = []
    for start in range(0, len(waveforms), chunk_size):
        c = mfcc(waveforms[start : start + chunk_size], sample_rate, n_mfcc)
        d = deltas(c)
        out.append(np.concatenate([c.mean(1), c.std(1), d.mean(1), d.std(1)], axis=-1))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 4 * n_mfcc), np.float32)
