"""The ``lee`` text dataset: the Lee news corpus shipped with gensim, as windows of token ids.

Training text: gensim's ``lee_background.cor`` (300 news documents, ~60k words); held-out
text: ``lee.cor`` (50 documents). Both are read from the data bundled in the gensim wheel
(``gensim.test.utils.datapath``), so gensim is needed at run time, offline.

Tokenization (`tokenize`): the text is lower-cased and the tokens are the maximal runs of the
ASCII letters ``a``–``z``; runs of one letter are dropped (the ``s`` of ``it's``, the article
``a``). Digits, punctuation and every other character separate tokens. ``"Hill Top's 4:00pm
blaze"`` → ``["hill", "top", "pm", "blaze"]``.

Vocabulary (`build_vocabulary`): the words occurring at least ``min_count`` times (default 5,
gensim's default) in the training text, most frequent first (ties alphabetical), after two
reserved entries: id 0 ``[PAD]`` (`PAD_ID`, padding) and id 1 ``[MASK]`` (for masked language
modelling), named in ``Vocabulary.special`` as ``{"pad": 0, "mask": 1}`` with count 0.

Examples: each document's tokens, with out-of-vocabulary words dropped first (as gensim drops
them before windowing), are cut into consecutive windows of ``window_length`` ids (default
64); the last window of a document is padded with 0. A window never spans two documents.
Windows of fewer than two tokens are left out (they hold no word pair). ``window_length`` 0 or
None keeps each document whole, one example per document padded with 0 to the longest (in
`load_lee`, the longest of the training and held-out text: 552 and 90 words, so [300, 552] and
[50, 552]), as gensim trains on whole documents. No labels.

`TextDataset` adds the vocabulary and `TextDataset.evaluate_words`, the word-similarity and
analogy evaluation of `ssl_jax.evaluation.words`.
"""

import collections
import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ssl_jax.data.datasets import ArrayDataset
from ssl_jax.data.spec import PAD_ID, Vocabulary

MASK_TOKEN = "[MASK]"
PAD_TOKEN = "[PAD]"
SPECIAL = {"pad": PAD_ID, "mask": 1}
NUM_SPECIAL = len(SPECIAL)
MIN_COUNT = 5
WINDOW_LENGTH = 64

_WORD = re.compile(r"[a-z]{2,}")


def tokenize(text: str) -> list[str]:
    """Lower-cased runs of two or more ASCII letters, in order (see the module docstring)."""
    return _WORD.findall(text.lower())


def corpus_path(name: str) -> str:
    """Path of a file of gensim's bundled test data (``lee_background.cor``, ``lee.cor``, …)."""
    from gensim.test.utils import datapath

    return datapath(name)


def read_documents(name: str) -> list[list[str]]:
    """The tokenized documents (one a line) of one of gensim's bundled corpus files."""
    with open(corpus_path(name), encoding="utf-8", errors="replace") as f:
        return [tokenize(line) for line in f if line.strip()]


def build_vocabulary(documents: Iterable[Sequence[str]], min_count: int = MIN_COUNT) -> Vocabulary:
    """[PAD], [MASK], then the words seen ≥ ``min_count`` times, by count (desc.) then word."""
    counts = collections.Counter(word for doc in documents for word in doc)
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return Vocabulary(
        words=(PAD_TOKEN, MASK_TOKEN, *kept),
        counts=(0, 0, *(counts[w] for w in kept)),
        special=dict(SPECIAL),
    )


def encode_documents(
    documents: Iterable[Sequence[str]],
    vocabulary: Vocabulary,
    window_length: int | None = WINDOW_LENGTH,
    pad_to: int = 0,
) -> np.ndarray:
    """Documents → int32 [N, window_length] windows of in-vocabulary ids, 0-padded.

    Out-of-vocabulary words are dropped before cutting; each document is cut on its own, and
    windows holding fewer than two tokens are left out. ``window_length`` 0 or None: one
    example per whole document, 0-padded to the longest one or to ``pad_to`` if that is longer.
    """
    index = vocabulary.index
    chunks = []
    for doc in documents:
        ids = [index[w] for w in doc if w in index and index[w] >= NUM_SPECIAL]
        step = window_length or max(len(ids), 1)
        chunks.extend(ids[start : start + step] for start in range(0, len(ids), step))
    chunks = [chunk for chunk in chunks if len(chunk) >= 2]
    width = window_length or max([pad_to, *(len(chunk) for chunk in chunks)])
    windows = [chunk + [PAD_ID] * (width - len(chunk)) for chunk in chunks]
    return np.asarray(windows, dtype=np.int32).reshape(-1, width)


@dataclasses.dataclass(frozen=True, repr=False)  # ArrayDataset's short repr
class TextDataset(ArrayDataset):
    """An `ArrayDataset` of token windows, with its `Vocabulary` and a word evaluation."""

    vocabulary: Vocabulary | None = None

    def evaluate_words(self, embed_ids: Callable[[np.ndarray], np.ndarray]) -> dict:
        """WordSim-353 and SimLex-999 Spearman ρ and 3CosAdd analogy accuracy of word vectors.

        ``embed_ids(ids: np.int32 [N]) -> np.float32 [N, D]`` gives the vector of each id; it is
        called once on every id of the vocabulary. See `ssl_jax.evaluation.words.evaluate`.
        """
        from ssl_jax.evaluation import words

        ids = np.arange(len(self.vocabulary), dtype=np.int32)
        vectors = np.asarray(embed_ids(ids), dtype=np.float32)
        return words.evaluate(vectors, self.vocabulary)


def load_lee(min_count: int = MIN_COUNT, window_length: int | None = WINDOW_LENGTH) -> TextDataset:
    """The ``lee`` dataset: training windows of ``lee_background.cor``, held out ``lee.cor``.

    ``window_length`` 0 or None: one example per whole document, both splits padded to the
    longest document of either.
    """
    train_docs = read_documents("lee_background.cor")
    test_docs = read_documents("lee.cor")
    vocabulary = build_vocabulary(train_docs, min_count)
    train = encode_documents(train_docs, vocabulary, window_length)
    test = encode_documents(test_docs, vocabulary, window_length, pad_to=train.shape[1])
    if test.shape[1] > train.shape[1]:
        train = encode_documents(train_docs, vocabulary, window_length, pad_to=test.shape[1])
    base = ArrayDataset.from_arrays(
        "lee",
        {"tokens": train},
        {"tokens": test},
        tokens={"vocabulary": vocabulary, "num_values": len(vocabulary)},
    )
    return TextDataset(base.name, base.train, base.test, base.spec, vocabulary)
