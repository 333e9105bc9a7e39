"""``mnist_captions``: the MNIST subset with a short English caption per image, for CLIP.

The images, labels and train/held-out split are those of ``mnist_subset`` (4,000 train, 1,000
held out). Each image also gets ``tokens``, the ids of a caption generated from its label by
one of the `TRAIN_TEMPLATES`, e.g. "a photo of the number seven", "a handwritten 7", "the
digit seven, written by hand"; ``{word}`` is the English number word, ``{digit}`` the
numeral. The template of example i of a split is drawn by ``numpy.random.default_rng`` seeded
with `SEED` (train) or `SEED` + 1 (held out), so every load gives the same captions.

Zero-shot prompts (`prompt_tokens`) use the `HELDOUT_TEMPLATES`, which no training caption
follows: their strings never occur in the training text (e.g. "a handwritten seven", where
training only ever wrote "a handwritten 7"), though each of their words does. A classifier
built from them works only if the text tower learnt what the words mean, not the caption
strings it saw.

Tokenization (`tokenize`): lower-cased runs of the letters ``a``–``z`` and single digits; the
rest (commas, spaces) separates tokens. "The digit seven, written by hand" → ["the", "digit",
"seven", "written", "by", "hand"].

Vocabulary (`build_vocabulary`): id 0 ``[PAD]`` (`ssl_jax.data.spec.PAD_ID`), id 1 ``[UNK]``
(words a prompt uses that no training caption has), then every word of the training captions,
most frequent first (ties alphabetical). Captions are padded with 0 to `MAX_LENGTH` ids.

====================  ====================================================================
name                  what it holds
====================  ====================================================================
``images``            [28, 28, 1] uint8, the digit
``tokens``            [8] int32 caption ids, 0-padded
``labels``            [] int32, the digit 0-9
====================  ====================================================================

`add_captions` captions any dataset of digit images the same way (the tests caption sklearn's
8×8 ``digits``).
"""

import collections
import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ssl_jax.data.datasets import ArrayDataset, load_mnist_subset
from ssl_jax.data.spec import PAD_ID, Vocabulary

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# The captions of the training data. Half name the number as a word and half as a numeral, so
# the text tower must learn that "seven" and "7" mean the same digit.
TRAIN_TEMPLATES = (
    "a photo of the number {word}",
    "a handwritten {digit}",
    "the digit {word}, written by hand",
    "a picture of a {digit}",
    "an image of the digit {digit}",
    "a scanned {word}",
    "the number {digit}",
    "a {word} drawn by hand",
)
# Zero-shot prompts only: new strings of known words (each one swaps the number form or the
# phrase a training template uses).
HELDOUT_TEMPLATES = (
    "a handwritten {word}",
    "a photo of the digit {digit}",
    "an image of a {word}",
    "the number {word}, written by hand",
)
PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
UNK_ID = 1
SPECIAL = {"pad": PAD_ID, "unknown": UNK_ID}
MAX_LENGTH = 8
SEED = 0

_TOKEN = re.compile(r"[a-z]+|[0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-cased runs of letters and single digits, in order (see the module docstring)."""
    return _TOKEN.findall(text.lower())


def caption(template: str, label: int) -> str:
    """``template`` filled in for digit ``label`` (0-9)."""
    return template.format(word=NUMBER_WORDS[label], digit=str(label))


def captions_for(labels: np.ndarray, seed: int, templates: Sequence[str] = TRAIN_TEMPLATES):
    """One caption per label, its template drawn uniformly with ``seed`` (deterministic)."""
    choice = np.random.default_rng(seed).integers(len(templates), size=len(labels))
    return [caption(templates[t], int(y)) for t, y in zip(choice, labels, strict=True)]


def build_vocabulary(texts: Iterable[str]) -> Vocabulary:
    """[PAD], [UNK], then the words of ``texts`` by count (descending), ties alphabetical."""
    counts = collections.Counter(word for text in texts for word in tokenize(text))
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return Vocabulary(
        words=(PAD_TOKEN, UNK_TOKEN, *words),
        counts=(0, 0, *(counts[w] for w in words)),
        special=dict(SPECIAL),
    )


def encode(
    texts: Iterable[str], vocabulary: Vocabulary | Mapping[str, int], length: int = MAX_LENGTH
) -> np.ndarray:
    """Texts → int32 [N, length] ids, unknown words → [UNK], 0-padded (longer texts cut).

    ``vocabulary`` may also be its word → id index (`Vocabulary.index`), which callers that
    encode one text at a time build once instead of on every call."""
    index = vocabulary.index if isinstance(vocabulary, Vocabulary) else vocabulary
    rows = []
    for text in texts:
        ids = [index.get(word, UNK_ID) for word in tokenize(text)][:length]
        rows.append(ids + [PAD_ID] * (length - len(ids)))
    return np.asarray(rows, dtype=np.int32).reshape(-1, length)


@dataclasses.dataclass(frozen=True, repr=False)  # ArrayDataset's short repr
class CaptionDataset(ArrayDataset):
    """An `ArrayDataset` of images with captions, with the captions' `Vocabulary`."""

    vocabulary: Vocabulary | None = None
    class_names: tuple[str, ...] = NUMBER_WORDS

    def prompt_tokens(self, templates: Sequence[str] = HELDOUT_TEMPLATES) -> np.ndarray:
        """int32 [C, P, MAX_LENGTH]: each class's caption under each of the P ``templates``
        (by default the held-out ones), for `ssl_jax.objectives.clip.zero_shot_classify`."""
        prompts = [[caption(t, label) for t in templates] for label in range(len(self.class_names))]
        flat = encode([p for row in prompts for p in row], self.vocabulary)
        return flat.reshape(len(prompts), len(templates), MAX_LENGTH)


def add_captions(dataset: ArrayDataset, name: str) -> CaptionDataset:
    """``dataset`` (images and digit ``labels`` 0-9) with a caption of each image's label as
    ``tokens``, built as for ``mnist_captions`` (see the module docstring)."""
    train_text = captions_for(dataset.train["labels"], SEED)
    test_text = captions_for(dataset.test["labels"], SEED + 1)
    vocabulary = build_vocabulary(train_text)
    train = {**dataset.train, "tokens": encode(train_text, vocabulary)}
    test = {**dataset.test, "tokens": encode(test_text, vocabulary)}
    order = ("images", "tokens", "labels")
    arrays = ArrayDataset.from_arrays(
        name,
        {k: train[k] for k in order},
        {k: test[k] for k in order},
        tokens={"vocabulary": vocabulary, "num_values": len(vocabulary)},
    )
    return CaptionDataset(arrays.name, arrays.train, arrays.test, arrays.spec, vocabulary)


def load_mnist_captions() -> CaptionDataset:
    """The ``mnist_captions`` dataset (see the module docstring)."""
    return add_captions(load_mnist_subset(), "mnist_captions")
