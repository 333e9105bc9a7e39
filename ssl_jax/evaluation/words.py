"""Word-vector evaluation: word similarity (WordSim-353, SimLex-999) and analogies (3CosAdd).

The test sets are those bundled with gensim's test data (``gensim.test.utils.datapath``):

- ``wordsim353.tsv``: 353 word pairs with a mean human relatedness score (Finkelstein et al.
  2002); ``simlex999.txt``: 999 pairs scored for similarity proper (Hill et al. 2015). The
  score of a set is Spearman's ρ between the cosine similarity of the two words' vectors and
  the human score, over the pairs whose two words are both in the vocabulary; the other pairs
  are counted as skipped.
- ``questions-words.txt``: Mikolov et al.'s (2013) 19,544 analogy questions "a : b :: c : d"
  in 14 sections (5 semantic, 9 syntactic). A question is used when its four words are in the
  vocabulary. 3CosAdd: with unit vectors û, the answer is

      d̂ = argmax_{w ∉ {a, b, c}} ûᵂ · (û_b − û_a + û_c),

  over every word of the vocabulary (reserved entries such as padding excluded); a question is
  right when d̂ = d. Accuracy = right / used.

Words are compared lower-cased (the ``lee`` vocabulary is lower-case). All scores are computed
in NumPy / JAX on arrays, the analogies as batched matrix products.
"""

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

SIMILARITY_SETS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
ANALOGY_FILE = "questions-words.txt"


def _datapath(name: str) -> str:
    from gensim.test.utils import datapath

    return datapath(name)


@functools.cache
def read_word_pairs(name: str) -> tuple[tuple[str, str, float], ...]:
    """``(word1, word2, human score)`` of a tab-separated pair file (``#`` lines are comments)."""
    pairs = []
    with open(_datapath(name), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            first, second, score = line.rstrip("\n").split("\t")[:3]
            pairs.append((first.lower(), second.lower(), float(score)))
    return tuple(pairs)


@functools.cache
def read_analogies(name: str = ANALOGY_FILE) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """``(section of each question, questions (a, b, c, d))`` of ``questions-words.txt``."""
    sections, questions, section = [], [], ""
    with open(_datapath(name), encoding="utf-8") as f:
        for line in f:
            if line.startswith(":"):
                section = line[1:].strip()
            elif line.strip():
                sections.append(section)
                questions.append(tuple(line.lower().split()))
    return tuple(sections), tuple(questions)


def unit_vectors(vectors, eps: float = 1e-12):
    """Rows of ``vectors`` [N, D] scaled to unit L2 norm (a zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.sum(vectors * vectors, axis=1, keepdims=True))
    return vectors / np.maximum(norms, eps)


def average_ranks(x) -> np.ndarray:
    """Ranks 1..n of ``x`` [n], ties given the mean of the ranks they span."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # Runs of equal values: first index of each run, and each element's run.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    run = np.cumsum(np.r_[True, sorted_x[1:] != sorted_x[:-1]]) - 1
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 … ends
    ranks = np.empty(len(x))
    ranks[order] = mean_rank[run]
    return ranks


def spearman(x, y) -> float:
    """Spearman's ρ: Pearson correlation of the average ranks of ``x`` and ``y`` [n]."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt(np.sum(rx * rx) * np.sum(ry * ry))
    return float(np.sum(rx * ry) / denominator) if denominator > 0 else float("nan")


def word_similarity(
    vectors, index: Mapping[str, int], pairs: Sequence[tuple[str, str, float]]
) -> dict:
    """Spearman ρ of cosine similarity vs human score over the pairs in the vocabulary.

    Args:
      vectors: [V, D] one vector per id.
      index: word → id; words absent from it are out of vocabulary.
      pairs: ``(word1, word2, score)``.

    Returns:
      ``{"spearman": ρ (nan with fewer than 2 pairs), "pairs": used, "skipped": the pairs
      with a word out of the vocabulary}``.
    """
    kept = [(index[a], index[b], s) for a, b, s in pairs if a in index and b in index]
    if len(kept) < 2:
        return {"spearman": float("nan"), "pairs": len(kept), "skipped": len(pairs) - len(kept)}
    first, second, human = (np.asarray(column) for column in zip(*kept, strict=True))
    unit = unit_vectors(vectors)
    cosine = np.sum(unit[first] * unit[second], axis=1)
    return {
        "spearman": spearman(cosine, human),
        "pairs": len(kept),
        "skipped": len(pairs) - len(kept),
    }


@jax.jit
def _analogy_predictions(unit, candidates, questions):
    """3CosAdd answers of ``questions`` [Q, 3] ids (a, b, c) among ``candidates`` [V] bool."""
    a, b, c = unit[questions[:, 0]], unit[questions[:, 1]], unit[questions[:, 2]]
    scores = (b - a + c) @ unit.T  # [Q, V]
    columns = jnp.arange(unit.shape[0])
    excluded = (columns[None, :] == questions[:, :, None]).any(axis=1) | ~candidates[None, :]
    return jnp.argmax(jnp.where(excluded, -jnp.inf, scores), axis=1)


def analogy_accuracy(
    vectors,
    index: Mapping[str, int],
    questions: Sequence[tuple[str, str, str, str]],
    candidates=None,
    batch_size: int = 1024,
) -> dict:
    """3CosAdd accuracy on the questions whose four words are in the vocabulary.

    Args:
      vectors: [V, D] one vector per id.
      index: word → id.
      questions: ``(a, b, c, d)`` word tuples, "a is to b as c is to d".
      candidates: [V] bool, the ids that may be answers (default: every id).
      batch_size: questions scored per matrix product.

    Returns:
      ``{"accuracy": right / used (nan if none), "questions": used, "skipped": the others,
      "correct": right}``.
    """
    kept = [q for q in questions if all(w in index for w in q)]
    result = {"questions": len(kept), "skipped": len(questions) - len(kept), "correct": 0}
    if not kept:
        return {**result, "accuracy": float("nan")}
    ids = np.asarray([[index[w] for w in q] for q in kept], dtype=np.int32)
    unit = jnp.asarray(unit_vectors(vectors))
    if candidates is None:
        candidates = np.ones(len(unit), dtype=bool)
    candidates = jnp.asarray(candidates)
    # Pad to whole batches so that every batch has one shape (one compiled program).
    padded = -len(ids) % batch_size
    queries = np.concatenate([ids[:, :3], np.zeros((padded, 3), np.int32)])
    predictions = np.concatenate(
        [
            np.asarray(_analogy_predictions(unit, candidates, queries[i : i + batch_size]))
            for i in range(0, len(queries), batch_size)
        ]
    )[: len(ids)]
    correct = int(np.sum(predictions == ids[:, 3]))
    return {**result, "correct": correct, "accuracy": correct / len(ids)}


def evaluate(vectors, vocabulary) -> dict:
    """Every word evaluation of ``vectors`` [V, D], row i the vector of id i of ``vocabulary``.

    Reserved entries (``vocabulary.special``: padding, mask) are neither looked up nor answers.

    Returns:
      ``{"wordsim353_spearman", "wordsim353_pairs", "wordsim353_skipped", "simlex999_…" (same
      three), "analogy_accuracy", "analogy_questions", "analogy_skipped", "analogy_correct",
      "analogy_semantic_accuracy", "analogy_syntactic_accuracy"}``.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    special = set(vocabulary.special.values())
    index = {w: i for i, w in enumerate(vocabulary.words) if i not in special}
    candidates = np.ones(len(vectors), dtype=bool)
    candidates[list(special)] = False
    result = {}
    for name, filename in SIMILARITY_SETS.items():
        scores = word_similarity(vectors, index, read_word_pairs(filename))
        result.update({f"{name}_{key}": value for key, value in scores.items()})
    sections, questions = read_analogies()
    analogies = analogy_accuracy(vectors, index, questions, candidates)
    result.update({f"analogy_{key}": value for key, value in analogies.items()})
    for part, in_part in (("semantic", False), ("syntactic", True)):
        chosen = [
            q for s, q in zip(sections, questions, strict=True) if s.startswith("gram") == in_part
        ]
        scores = analogy_accuracy(vectors, index, chosen, candidates)
        result[f"analogy_{part}_accuracy"] = scores["accuracy"]
    return result
