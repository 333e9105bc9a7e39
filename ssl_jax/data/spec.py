"""The input contract: a dataset yields examples as named arrays described by an element spec.

Every dataset — in memory, ``.npz``, ``tfds:``, text, audio — gives its examples as a dict of
named arrays, and says what each name holds with an `ArraySpec` (the shape and dtype of one
example's array, and its kind):

====================  ==========================================================================
name                  what it holds
====================  ==========================================================================
``images``            [H, W, C] pixels: stored uint8 in [0, 255] (or float in [0, 1])
``tokens``            [L] token ids of a `Vocabulary` (int32; id 0 is padding)
``audio``             [T] waveform samples: stored int16 (or float in [-1, 1]), ``sample_rate``
``labels``            [] int32 class index; further label names (``speaker``, ``word``) likewise
====================  ==========================================================================

What is stored is compact (uint8 pixels, int16 samples). What models see is decoded by
`decode` — float32 pixels in [0, 1], float32 samples in [-1, 1], int32 ids — once, on the
device, by the data pipeline; objectives receive decoded batches and build their models from
the decoded spec (`decoded_spec`). Any other name (e.g. a user's ``depth`` map) passes through
unchanged.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ssl_jax.errors import UserError

INPUT_KINDS = ("images", "tokens", "audio")
LABEL_KIND = "label"
PAD_ID = 0  # token id 0 pads every token sequence


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Token ids ↔ words, with each word's count in the training text.

    ``words[0]`` is the padding token; ``special`` names further reserved entries (e.g.
    ``{"mask": 1}``) so objectives such as masked language modelling find them by role.
    """

    words: tuple[str, ...]
    counts: tuple[int, ...]  # occurrences in the training text (0 for reserved entries)
    special: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}

    def ids(self, words: Sequence[str]) -> np.ndarray:
        """Ids of ``words``; -1 for words not in the vocabulary."""
        index = self.index
        return np.array([index.get(w, -1) for w in words], dtype=np.int32)

    def to_json(self) -> dict:
        return {
            "words": list(self.words),
            "counts": list(self.counts),
            "special": dict(self.special),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        return cls(tuple(data["words"]), tuple(int(c) for c in data["counts"]), data["special"])


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """One named array of an example: shape (without the batch axis), dtype and kind.

    ``kind`` is ``images``, ``tokens``, ``audio``, ``label`` or ``other``. ``num_values`` is the
    number of classes of a label or the vocabulary size of tokens; ``sample_rate`` belongs to
    audio and ``vocabulary`` to tokens.
    """

    shape: tuple[int, ...]
    dtype: str
    kind: str
    num_values: int | None = None
    sample_rate: int | None = None
    vocabulary: Vocabulary | None = dataclasses.field(default=None, compare=False, repr=False)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["shape"] = list(self.shape)
        data["vocabulary"] = self.vocabulary.to_json() if self.vocabulary else None
        return data

    @classmethod
    def from_json(cls, data: dict) -> "ArraySpec":
        vocabulary = data.get("vocabulary")
        return cls(
            shape=tuple(data["shape"]),
            dtype=data["dtype"],
            kind=data["kind"],
            num_values=data.get("num_values"),
            sample_rate=data.get("sample_rate"),
            vocabulary=Vocabulary.from_json(vocabulary) if vocabulary else None,
        )


InputSpec = Mapping[str, ArraySpec]


def kind_of(name: str) -> str:
    """The kind a name implies: the three input names are their own kind; ``labels`` is a label."""
    if name in INPUT_KINDS:
        return name
    return LABEL_KIND if name == "labels" else "other"


def spec_of_arrays(arrays: Mapping[str, np.ndarray], **extra) -> dict[str, ArraySpec]:
    """The element spec of in-memory arrays ``{name: [N, ...]}``.

    ``extra`` maps names to `ArraySpec` fields to set (``{"speaker": {"kind": "label"}}``).
    Labels and tokens without a given ``num_values`` get max + 1 (classes, vocabulary size).
    """
    spec = {}
    for name, array in arrays.items():
        fields = dict(extra.get(name, {}))
        kind = fields.pop("kind", kind_of(name))
        if kind in (LABEL_KIND, "tokens") and "num_values" not in fields:
            fields["num_values"] = int(array.max()) + 1 if len(array) else 0
        spec[name] = ArraySpec(tuple(array.shape[1:]), np.dtype(array.dtype).name, kind, **fields)
    return spec


def decoded_dtype(spec: ArraySpec) -> str:
    """The dtype a model sees: float32 pixels and samples, int32 ids and labels."""
    if spec.kind in ("images", "audio"):
        return "float32"
    if spec.kind in ("tokens", LABEL_KIND):
        return "int32"
    return spec.dtype


def decoded_spec(spec: InputSpec) -> dict[str, ArraySpec]:
    """``spec`` as the model sees it (`decode` applied)."""
    return {name: dataclasses.replace(s, dtype=decoded_dtype(s)) for name, s in spec.items()}


def decode(spec: ArraySpec, array):
    """Stored values → model inputs (NumPy or JAX arrays alike).

    uint8 pixels → float32 / 255; int16 samples → float32 / 32768; floats → float32; ids and
    labels → int32; other kinds unchanged.
    """
    dtype = np.dtype(array.dtype)
    if spec.kind == "images":
        if dtype == np.uint8:
            return array.astype(np.float32) / np.float32(255.0)
        return array.astype(np.float32)
    if spec.kind == "audio":
        if dtype == np.int16:
            return array.astype(np.float32) / np.float32(32768.0)
        return array.astype(np.float32)
    if spec.kind in ("tokens", LABEL_KIND):
        return array.astype(np.int32)
    return array


def decode_batch(spec: InputSpec, batch: Mapping[str, Any]) -> dict:
    """`decode` of every named array of ``batch`` that ``spec`` describes."""
    return {name: decode(spec[name], x) if name in spec else x for name, x in batch.items()}


def sample_batch(spec: InputSpec, size: int = 2) -> dict:
    """A batch of zeros of the decoded spec: what ``Objective.init`` receives (shapes only)."""
    import jax.numpy as jnp

    decoded = decoded_spec(spec)
    return {name: jnp.zeros((size, *s.shape), s.dtype) for name, s in decoded.items()}


def input_names(spec: InputSpec) -> list[str]:
    """Names of the model inputs of ``spec`` (images, tokens, audio, other), in order."""
    return [name for name, s in spec.items() if s.kind != LABEL_KIND]


def label_names(spec: InputSpec) -> list[str]:
    """Names of the labels of ``spec`` (``labels``, ``speaker``, ``word``, …), in order."""
    return [name for name, s in spec.items() if s.kind == LABEL_KIND]


def require(spec: InputSpec, name: str, objective: str, kind: str | None = None) -> ArraySpec:
    """``spec[name]``, or a one-line error naming what the objective needs and what exists."""
    if name not in spec or (kind is not None and spec[name].kind != kind):
        have = ", ".join(f"{n} ({s.kind})" for n, s in spec.items()) or "nothing"
        raise UserError(
            f"objective {objective!r} needs {kind or 'an array'} named {name!r} but the dataset "
            f"gives {have}; choose a dataset of that kind with --config.dataset."
        )
    return spec[name]


def spec_to_json(spec: InputSpec) -> dict:
    return {name: s.to_json() for name, s in spec.items()}


def spec_from_json(data: Mapping[str, dict]) -> dict[str, ArraySpec]:
    return {name: ArraySpec.from_json(s) for name, s in data.items()}
