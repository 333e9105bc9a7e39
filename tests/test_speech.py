"""The speech dataset (eSpeak NG spoken digits) and the no-learning audio features."""

import os

import numpy as np
import pytest

from ssl_jax.data import audio, speech
from ssl_jax.errors import UserError

SAMPLE_RATE = 16000


@pytest.fixture(scope="session")
def speech_data():
    """The dataset, generated once into the cache (``$SSL_JAX_CACHE`` or ~/.cache/ssl_jax)."""
    return speech.load_speech()


def test_speech_shapes_dtypes_and_spec(speech_data):
    assert speech_data.train["audio"].shape == (800, 16000)
    assert speech_data.test["audio"].shape == (200, 16000)
    assert speech_data.train["audio"].dtype == np.int16
    spec = speech_data.spec
    assert spec["audio"].kind == "audio" and spec["audio"].sample_rate == SAMPLE_RATE
    assert spec["audio"].shape == (16000,)
    assert spec["word"].kind == spec["speaker"].kind == "label"
    assert spec["word"].num_values == 10 and spec["speaker"].num_values == len(speech.SPEAKERS)
    assert set(spec) == {"audio", "word", "speaker"}
    decoded = speech_data.decoded("train", "audio")
    assert decoded.dtype == np.float32 and np.abs(decoded).max() <= 1.0


def test_speech_held_out_split_covers_every_word_and_speaker(speech_data):
    for split, per_pair in (("train", 8), ("test", 2)):
        arrays = getattr(speech_data, split)
        counts = np.zeros((10, len(speech.SPEAKERS)), int)
        np.add.at(counts, (arrays["word"], arrays["speaker"]), 1)
        assert (counts == per_pair).all(), split


def test_speech_utterances_are_centred_and_audible(speech_data):
    x = speech_data.decoded("train", "audio").astype(np.float64)
    energy = x**2
    centroid = (energy * np.arange(x.shape[1])).sum(1) / energy.sum(1)
    assert np.all(np.abs(centroid - 8000) < 2500)  # speech near the middle of the 1 s window
    peak = np.abs(x).max(1)
    assert peak.min() > 0.25 and peak.max() < 0.95  # the jittered gains, 0.3-0.9


def test_speech_generation_is_deterministic(speech_data):
    del speech_data  # ensures the cache exists
    arrays = speech.load_arrays()
    for word, speaker in ((7, 3), (0, 9)):
        first = speaker * 100 + word * 10  # the order of `generate`
        block = slice(first, first + speech.REPETITIONS)
        assert (arrays["word"][block] == word).all() and (arrays["speaker"][block] == speaker).all()
        np.testing.assert_array_equal(speech.synthesize_pair(word, speaker), arrays["audio"][block])
    # the jitter makes repetitions differ
    assert not np.array_equal(arrays["audio"][0], arrays["audio"][1])


def test_speech_cache_is_written_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_JAX_CACHE", str(tmp_path))
    fake = {"audio": np.ones((3, 5), np.int16), "word": np.arange(3), "speaker": np.zeros(3)}
    calls = []
    monkeypatch.setattr(speech, "generate", lambda: calls.append(1) or fake)
    first = speech.load_arrays(verbose=False)
    second = speech.load_arrays(verbose=False)  # read back from the cache
    assert len(calls) == 1
    assert os.listdir(tmp_path) == [f"speech-v{speech.VERSION}.npz"]  # no temporary file left
    for name in fake:
        np.testing.assert_array_equal(first[name], second[name])


def test_speech_without_espeak_names_the_fix(monkeypatch):
    import espeakng_loader

    monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: "/nonexistent/libespeak.so")
    with pytest.raises(UserError, match="pip install espeakng-loader"), speech.Synthesizer():
        pass


# --- log-mel and MFCC ------------------------------------------------------------------


def test_power_spectrogram_matches_a_direct_dft():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1200).astype(np.float32)
    power = audio.power_spectrogram(x, n_fft=512, win_length=400, hop_length=160)
    assert power.shape == (1 + (1200 - 400) // 160, 257)
    t = 3  # frame 3, written out: Σ_n w_n x_{160·3 + n} e^{−2πi f n / 512}
    n = np.arange(400)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * (n + 1) / 401)
    segment = x[160 * t : 160 * t + 400] * window
    for f in (0, 17, 100, 256):
        value = np.sum(segment * np.exp(-2j * np.pi * f * n / 512))
        np.testing.assert_allclose(power[t, f], abs(value) ** 2, rtol=1e-3, atol=1e-3)


def test_pure_tone_energy_lands_in_the_mel_band_of_its_frequency():
    def mel(f):  # the HTK mel scale, written independently of ssl_jax.data.audio
        return 2595.0 * np.log10(1.0 + f / 700.0)

    top = mel(SAMPLE_RATE / 2)
    centres_mel = np.linspace(mel(20.0), top, 42)[1:-1]
    centres_hz = 700.0 * (10 ** (centres_mel / 2595.0) - 1.0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    for frequency in (300.0, 1000.0, 2500.0, 6000.0):
        tone = 0.5 * np.sin(2 * np.pi * frequency * t)
        log_mel = audio.log_mel_spectrogram(tone, SAMPLE_RATE)  # [frames, 40]
        assert log_mel.shape == (98, 40)
        band = int(np.argmax(log_mel.mean(0)))
        nearest = np.argsort(np.abs(centres_hz - frequency))[:2]
        assert band in nearest, (frequency, band, centres_hz[nearest])


def test_mel_filters_are_triangles_that_sum_to_one_between_the_outer_centres():
    bank = audio.mel_filterbank(SAMPLE_RATE, n_fft=512, n_mels=40)
    assert bank.shape == (257, 40)
    assert bank.min() >= 0.0 and bank.max() <= 1.0
    bins_hz = np.arange(257) * SAMPLE_RATE / 512
    peaks = bins_hz[np.argmax(bank, axis=0)]
    assert np.all(np.diff(peaks) >= 0)  # centres rise with the filter index
    inside = (bins_hz > peaks[1]) & (bins_hz < peaks[-2])
    np.testing.assert_allclose(bank[inside].sum(1), 1.0, atol=1e-5)


def test_mfcc_is_the_orthonormal_dct_of_the_log_mel_energies():
    x = np.random.default_rng(1).standard_normal(4000).astype(np.float32) * 0.1
    log_mel = audio.log_mel_spectrogram(x, SAMPLE_RATE).astype(np.float64)
    coefficients = audio.mfcc(x, SAMPLE_RATE, n_mfcc=13)
    m = np.arange(40)
    for k in (0, 1, 5, 12):
        scale = np.sqrt(1 / 40) if k == 0 else np.sqrt(2 / 40)
        expected = scale * (log_mel * np.cos(np.pi * k * (2 * m + 1) / 80)).sum(-1)
        np.testing.assert_allclose(coefficients[:, k], expected, rtol=1e-4, atol=1e-3)


def test_mfcc_features_shape_and_gain_moves_only_the_mean_of_c0():
    rng = np.random.default_rng(2)
    waves = (0.1 * rng.standard_normal((3, 8000))).astype(np.float32)
    features = audio.mfcc_features(waves, SAMPLE_RATE)
    assert features.shape == (3, 52) and features.dtype == np.float32
    louder = audio.mfcc_features(2 * waves, SAMPLE_RATE)
    # log(4 · mel) = log mel + log 4: only c0 shifts, by sqrt(40) · log 4 (orthonormal DCT)
    np.testing.assert_allclose(louder[:, 0] - features[:, 0], np.sqrt(40) * np.log(4), rtol=1e-4)
    np.testing.assert_allclose(louder[:, 1:], features[:, 1:], atol=2e-3)


def test_mfcc_baseline_recognises_words(speech_data):
    """The baseline is a real one: a 1-nearest-neighbour on pooled MFCCs names the digit."""
    train = audio.mfcc_features(speech_data.decoded("train", "audio"), SAMPLE_RATE)
    test = audio.mfcc_features(speech_data.decoded("test", "audio"), SAMPLE_RATE)
    mean, std = train.mean(0), train.std(0) + 1e-6
    train, test = (train - mean) / std, (test - mean) / std
    distances = ((test[:, None] - train[None]) ** 2).sum(-1)
    predicted = speech_data.train["word"][np.argmin(distances, 1)]
    assert np.mean(predicted == speech_data.test["word"]) > 0.8
