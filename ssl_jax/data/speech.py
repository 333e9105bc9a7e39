"""``speech``: the spoken digits "zero" … "nine", synthesised offline with eSpeak NG.

Each utterance is one English digit word spoken by one of 10 eSpeak NG voice variants (the
speakers: m1, m2, m3, m4, m7, f1, f2, f3, f4, croak on the en-us voice), 10 times per word and
speaker with a jittered speaking rate (130-210 words per minute), pitch (35-65 of eSpeak's
0-100) and pitch range, a recording gain (peak 0.3-0.9 of full scale) and a faint noise floor
(σ = 0.002 of full scale). eSpeak synthesises at 22,050 Hz; the waveform is resampled to
16 kHz (`scipy.signal.resample_poly`, 320/441) and centred in a window of 1 s (16,000
samples). Every word is shorter: its 10 ms frames above −40 dBFS RMS span 0.2-0.8 s (median
0.4 s), all within 0.11-0.89 s of the window.

====================  ====================================================================
name                  what it holds
====================  ====================================================================
``audio``             [16000] int16 waveform at 16 kHz (decoded to float32 in [-1, 1])
``word``              [] int32, the digit 0-9 that is spoken
``speaker``           [] int32, the voice variant 0-9 (order of `SPEAKERS`)
====================  ====================================================================

1,000 utterances (10 words × 10 speakers × 10 repetitions), 32 MB of int16 samples. Held out:
200 utterances, 2 of every word × speaker pair (a split stratified on both labels, seed 0);
800 train. Generated deterministically on first use — fixed seeds for every jitter, and each
word × speaker pair spoken by a fresh instance of the synthesiser, whose output otherwise
depends on what it spoke before — then cached in ``$SSL_JAX_CACHE/speech-v1.npz`` (default
``~/.cache/ssl_jax``). Generating takes about 9 s of CPU time (25 s of wall time measured on a
shared, busy 2-core machine); loading the cache about 0.05 s.

Needs the ``espeakng-loader`` wheel (``pip install espeakng-loader``), which bundles
``libespeak-ng`` and its data; nothing is downloaded.
"""

import _ctypes
import ctypes
import os
import shutil
import tempfile
import time

import numpy as np
from scipy.signal import resample_poly

from ssl_jax.data.datasets import ArrayDataset, split_examples
from ssl_jax.errors import UserError

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPEAKERS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "croak")  # voices/!v variants
BASE_VOICE = "en-us"
REPETITIONS = 10
SAMPLE_RATE = 16000
NUM_SAMPLES = 16000  # 1 s windows
TEST_SIZE = 200  # 2 per word × speaker pair
SEED = 0
VERSION = 1  # bump when anything above or the synthesis changes: the cache file name has it

_AUDIO_OUTPUT_RETRIEVAL = 1  # espeak_AUDIO_OUTPUT: samples handed to the callback
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def cache_path() -> str:
    """Where the generated dataset is kept: ``$SSL_JAX_CACHE`` or ``~/.cache/ssl_jax``."""
    root = os.environ.get("SSL_JAX_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "ssl_jax"
    )
    return os.path.join(root, f"speech-v{VERSION}.npz")


class Synthesizer:
    """A private instance of libespeak-ng through ctypes, as a context manager:
    ``synthesize(text, voice, rate, pitch, pitch_range)`` → int16 samples at `sample_rate`
    (22,050 Hz).

    eSpeak NG keeps state between utterances (its waveform of one utterance depends on what the
    instance spoke before), so each `Synthesizer` loads its own copy of the library from a
    temporary folder — a fresh instance whatever else the process loaded — and unloads it on
    exit. The same calls on a fresh instance give the same samples.
    """

    def __enter__(self):
        try:
            import espeakng_loader

            library_path = espeakng_loader.get_library_path()
            data_path = espeakng_loader.get_data_path()
            self._folder = tempfile.TemporaryDirectory(prefix="ssl_jax_espeak_")
            private_copy = os.path.join(self._folder.name, os.path.basename(library_path))
            shutil.copyfile(library_path, private_copy)
            lib = ctypes.CDLL(private_copy, mode=os.RTLD_LOCAL)
        except (ImportError, OSError) as err:
            self._cleanup()
            raise UserError(
                f"the speech dataset needs eSpeak NG, which could not be loaded ({err}); "
                "install it with `pip install espeakng-loader`."
            ) from None
        self._lib = lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_RETRIEVAL, 0, data_path.encode(), 0)
        if self.sample_rate <= 0:
            self._cleanup()
            raise UserError(
                f"eSpeak NG failed to initialise with data at {data_path!r}; reinstall it with "
                "`pip install --force-reinstall espeakng-loader`."
            )
        self._chunks = []

        def collect(wav, count, events):
            del events
            if count > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            return 0  # 0: continue synthesis

        self._callback = _SYNTH_CALLBACK(collect)  # kept alive as long as the library uses it
        lib.espeak_SetSynthCallback(self._callback)
        return self

    def __exit__(self, *exc_info):
        self._lib.espeak_Terminate()
        self._cleanup()

    def _cleanup(self):
        lib = getattr(self, "_lib", None)
        if lib is not None:
            _ctypes.dlclose(lib._handle)  # the next instance starts from a clean state
            self._lib = None
        folder = getattr(self, "_folder", None)
        if folder is not None:
            folder.cleanup()
            self._folder = None

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int):
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise UserError(f"eSpeak NG has no voice {voice!r}; reinstall espeakng-loader.")
        for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            lib.espeak_SetParameter(parameter, int(value), 0)
        self._chunks.clear()
        data = text.encode() + b"\0"
        lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, 0, None, None)
        lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def centre(waveform: np.ndarray, length: int, threshold: float = 0.02) -> np.ndarray:
    """The span where |x| exceeds ``threshold`` × its peak, centred in ``length`` samples
    (cut evenly on both sides if longer)."""
    loud = np.flatnonzero(np.abs(waveform) > threshold * np.abs(waveform).max())
    speech = waveform[loud[0] : loud[-1] + 1]
    if len(speech) > length:
        start = (len(speech) - length) // 2
        return speech[start : start + length]
    out = np.zeros(length, waveform.dtype)
    start = (length - len(speech)) // 2
    out[start : start + len(speech)] = speech
    return out


def utterance(synth: Synthesizer, word: int, speaker: int, repetition: int) -> np.ndarray:
    """Repetition ``repetition`` of word ``word`` by speaker ``speaker``, int16 [16000].

    Its jitter (rate, pitch, pitch range, gain, noise) comes from a generator seeded with
    (`SEED`, word, speaker, repetition).
    """
    rng = np.random.default_rng([SEED, word, speaker, repetition])
    rate, pitch, pitch_range = rng.integers([130, 35, 30], [211, 66, 71])
    gain = rng.uniform(0.3, 0.9)
    voice = f"{BASE_VOICE}+{SPEAKERS[speaker]}"
    raw = synth.synthesize(WORDS[word], voice, rate, pitch, pitch_range)
    x = resample_poly(raw.astype(np.float64), SAMPLE_RATE, synth.sample_rate)
    x = centre(x, NUM_SAMPLES)
    x *= gain / np.abs(x).max()
    x += 0.002 * rng.standard_normal(NUM_SAMPLES)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def synthesize_pair(word: int, speaker: int) -> np.ndarray:
    """The `REPETITIONS` utterances of one word × speaker pair, int16 [10, 16000], spoken in
    order by a fresh `Synthesizer`: a function of (word, speaker) alone."""
    with Synthesizer() as synth:
        return np.stack([utterance(synth, word, speaker, r) for r in range(REPETITIONS)])


def generate() -> dict[str, np.ndarray]:
    """Synthesises every utterance: ``{"audio": int16 [N, 16000], "word", "speaker"}`` in the
    order speaker, word, repetition (utterance i is repetition i % 10 of word i // 10 % 10 by
    speaker i // 100)."""
    pairs = [(w, s) for s in range(len(SPEAKERS)) for w in range(len(WORDS))]
    return {
        "audio": np.concatenate([synthesize_pair(w, s) for w, s in pairs]),
        "word": np.repeat(np.array([w for w, _ in pairs], np.int32), REPETITIONS),
        "speaker": np.repeat(np.array([s for _, s in pairs], np.int32), REPETITIONS),
    }


def _save_atomically(path: str, arrays: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared data
        os.replace(tmp, path)  # readers see the old file or the whole new one, never a part
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_arrays(verbose: bool = True) -> dict[str, np.ndarray]:
    """The cached arrays, generated and saved first if the cache has none."""
    path = cache_path()
    if os.path.isfile(path):
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    if verbose:
        print(f"speech: synthesising {len(WORDS) * len(SPEAKERS) * REPETITIONS} utterances ...")
    start = time.perf_counter()
    arrays = generate()
    try:
        _save_atomically(path, arrays)
    except OSError as err:  # a read-only home still gets the dataset, only uncached
        print(f"speech: cannot cache in {path!r} ({err}); set SSL_JAX_CACHE to a writable folder.")
    if verbose:
        print(f"speech: generated in {time.perf_counter() - start:.1f} s, cached in {path}")
    return arrays


def load_speech() -> ArrayDataset:
    """The spoken digits, split into 800 train and 200 held-out utterances (2 per word ×
    speaker pair)."""
    arrays = load_arrays()
    stratify = arrays["word"] * len(SPEAKERS) + arrays["speaker"]
    return split_examples(
        "speech",
        arrays,
        TEST_SIZE,
        stratify=stratify,
        audio={"sample_rate": SAMPLE_RATE},
        word={"kind": "label"},
        speaker={"kind": "label"},
    )
