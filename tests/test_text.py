"""The lee text dataset, the word evaluations and the token Transformer."""

import collections
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from ssl_jax.data import text
from ssl_jax.data.spec import PAD_ID, Vocabulary
from ssl_jax.errors import UserError
from ssl_jax.evaluation import words
from ssl_jax.models import build_encoder


@pytest.fixture(scope="module")
def lee():
    return text.load_lee()


# --- tokenization, vocabulary, windows --------------------------------------------------------


def test_tokenize_keeps_lowercased_letter_runs_of_two_or_more():
    assert text.tokenize("Hill Top's 4:00pm blaze, U.S. and a NSW-based crew") == [
        "hill",
        "top",
        "pm",
        "blaze",
        "and",
        "nsw",
        "based",
        "crew",
    ]


def test_vocabulary_reserves_pad_and_mask_and_orders_by_count():
    docs = [["b", "a", "b", "c"], ["b", "a", "d", "c", "a"]]
    vocab = text.build_vocabulary(docs, min_count=2)
    assert vocab.words == ("[PAD]", "[MASK]", "a", "b", "c")  # a, b tie at 3: alphabetical
    assert vocab.counts == (0, 0, 3, 3, 2)
    assert vocab.special == {"pad": PAD_ID, "mask": 1}


def test_windows_drop_oov_words_before_cutting_and_pad_with_zero():
    vocab = Vocabulary(("[PAD]", "[MASK]", "x", "y"), (0, 0, 5, 5), {"pad": 0, "mask": 1})
    docs = [["x", "oov", "y", "x", "oov", "y", "x"], ["y"], ["oov", "[MASK]", "x", "y"]]
    windows = text.encode_documents(docs, vocab, window_length=3)
    # doc 1: x y x | y x → two windows; doc 2: one token → none; doc 3: special dropped too.
    np.testing.assert_array_equal(windows, [[2, 3, 2], [3, 2, 0], [2, 3, 0]])
    assert windows.dtype == np.int32


@pytest.mark.parametrize("whole", [0, None])
def test_whole_documents_are_one_example_each_padded_to_the_longest(whole):
    vocab = Vocabulary(("[PAD]", "[MASK]", "x", "y"), (0, 0, 5, 5), {"pad": 0, "mask": 1})
    docs = [["x", "oov", "y", "x", "oov", "y", "x"], ["y"], ["oov", "[MASK]", "x", "y"]]
    windows = text.encode_documents(docs, vocab, window_length=whole)
    np.testing.assert_array_equal(windows, [[2, 3, 2, 3, 2], [2, 3, 0, 0, 0]])
    assert windows.dtype == np.int32
    wider = text.encode_documents(docs, vocab, window_length=whole, pad_to=7)
    np.testing.assert_array_equal(wider, np.pad(windows, ((0, 0), (0, 2))))


def test_lee_matches_an_independent_count_of_the_corpus(lee):
    with open(text.corpus_path("lee_background.cor"), encoding="utf-8") as f:
        docs = [re.findall("[a-z]+", line.lower()) for line in f]
    counts = collections.Counter(w for doc in docs for w in doc if len(w) > 1)
    frequent = {w for w, c in counts.items() if c >= 5}
    vocab = lee.vocabulary
    assert set(vocab.words[2:]) == frequent
    assert all(vocab.counts[vocab.index[w]] == counts[w] for w in ("the", "fire", "sydney"))
    tokens = lee.train["tokens"]
    assert tokens.shape[1] == 64 and tokens.dtype == np.int32
    # Every in-vocabulary word is in a window but the last of a document when it is alone.
    lengths = [sum(w in frequent for w in doc) for doc in docs]
    alone = sum(n % 64 == 1 for n in lengths)
    assert (tokens > 1).sum() == sum(lengths) - alone
    # padding only at the end of a window
    assert np.all(np.diff((tokens == PAD_ID).astype(int), axis=1) >= 0)
    spec = lee.spec["tokens"]
    assert spec.kind == "tokens" and spec.num_values == len(vocab) and spec.vocabulary is vocab
    assert lee.test["tokens"].shape[0] > 0 and lee.test["tokens"].max() < len(vocab)


# --- word evaluations against independent references -----------------------------------------


def test_spearman_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 40).astype(float)  # many ties
    y = x + rng.normal(size=40)
    assert words.spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-9)


def test_word_similarity_equals_scipy_over_in_vocabulary_pairs():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(6, 4))
    index = {w: i for i, w in enumerate("abcdef")}
    pairs = [("a", "b", 1.0), ("a", "c", 3.0), ("b", "zz", 2.0), ("d", "e", 0.5), ("c", "f", 9.0)]
    result = words.word_similarity(vectors, index, pairs)
    kept = [(a, b, s) for a, b, s in pairs if a in index and b in index]
    cosines = [
        vectors[index[a]]
        @ vectors[index[b]]
        / np.linalg.norm(vectors[index[a]])
        / np.linalg.norm(vectors[index[b]])
        for a, b, _ in kept
    ]
    expected = scipy.stats.spearmanr(cosines, [s for _, _, s in kept]).statistic
    assert result["spearman"] == pytest.approx(expected, abs=1e-6)
    assert (result["pairs"], result["skipped"]) == (4, 1)


def test_analogy_accuracy_equals_a_brute_force_3cosadd_loop():
    rng = np.random.default_rng(2)
    vocab = [f"w{i}" for i in range(30)]
    index = {w: i for i, w in enumerate(vocab)}
    vectors = rng.normal(size=(30, 5))
    questions = [tuple(rng.choice(vocab, 4, replace=False)) for _ in range(200)]
    # Make some questions answerable: d = b − a + c exactly.
    for q in questions[:50]:
        a, b, c, d = (index[w] for w in q)
        vectors[d] = vectors[b] - vectors[a] + vectors[c]
    questions.append(("w1", "w2", "w3", "missing"))
    candidates = np.ones(30, bool)
    candidates[0] = False  # e.g. padding: never an answer
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    correct = used = 0
    for q in questions:
        if not all(w in index for w in q):
            continue
        a, b, c, d = (index[w] for w in q)
        best, best_score = None, -np.inf
        for w in range(30):
            if w in (a, b, c) or not candidates[w]:
                continue
            score = unit[w] @ (unit[b] - unit[a] + unit[c])
            if score > best_score:
                best, best_score = w, score
        used += 1
        correct += best == d
    result = words.analogy_accuracy(vectors, index, questions, candidates, batch_size=64)
    assert (result["questions"], result["skipped"], result["correct"]) == (used, 1, correct)
    assert result["accuracy"] == pytest.approx(correct / used)
    assert correct > 0


def test_evaluate_words_reports_scores_and_pair_counts(lee):
    vectors = np.random.default_rng(0).normal(size=(len(lee.vocabulary), 8)).astype(np.float32)
    result = lee.evaluate_words(lambda ids: vectors[ids])
    wordsim_size, simlex_size = (
        len(words.read_word_pairs(f)) for f in ("wordsim353.tsv", "simlex999.txt")
    )
    assert result["wordsim353_pairs"] + result["wordsim353_skipped"] == wordsim_size == 353
    assert result["simlex999_pairs"] + result["simlex999_skipped"] == simlex_size == 999
    assert result["wordsim353_pairs"] > 30 and result["simlex999_pairs"] > 30
    assert result["analogy_questions"] + result["analogy_skipped"] == 19544
    assert -1 <= result["wordsim353_spearman"] <= 1 and 0 <= result["analogy_accuracy"] <= 1


# --- the token Transformer --------------------------------------------------------------------


def _transformer(lee, **fields):
    config = dict(name="token_transformer", dim=16, depth=2, num_heads=2, **fields)
    return build_encoder(config, lee.spec["tokens"])


def test_token_transformer_shapes_and_layers(lee):
    pool = "cls"  # the mean pool is exercised by the padding test
    model = _transformer(lee, pool=pool)
    assert model.vocab_size == len(lee.vocabulary)
    tokens = jnp.asarray(lee.train["tokens"][:3, :16])
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(tokens)
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False, return_layers=True))
    features, layers = apply(variables, tokens)
    positions = 16 + (pool == "cls")
    assert features.shape == (3, 16)
    assert set(layers) == {"embed", "block1", "block2", "features"}
    assert layers["block2"].shape == (3, positions, 16)


def test_token_transformer_is_causal_when_asked(lee):
    model = _transformer(lee, causal=True)
    tokens = jnp.asarray(lee.train["tokens"][:2, :16])
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(tokens)
    changed = tokens.at[:, 10:].set(jnp.flip(tokens[:, 10:], axis=1) % 100 + 2)
    both = jnp.concatenate([tokens, changed])
    states = jax.jit(lambda x: model.apply(variables, x, method="encode_tokens")[0])(both)
    before, after = states[:2], states[2:]
    np.testing.assert_allclose(before[:, :10], after[:, :10], atol=1e-5)  # t < 10 unchanged
    assert not np.allclose(before[:, 10:], after[:, 10:], atol=1e-3)
    # Without the causal mask, earlier positions do see later tokens.
    bidirectional = _transformer(lee, causal=False)
    encode = jax.jit(lambda x: bidirectional.apply(variables, x, method="encode_tokens")[0])
    states = encode(both)
    assert not np.allclose(states[:2, :10], states[2:, :10], atol=1e-3)


def test_token_transformer_ignores_padding(lee):
    model = _transformer(lee)
    tokens = jnp.asarray(lee.train["tokens"][:2, :10])
    padded = jnp.pad(tokens, ((0, 0), (0, 6)))
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(padded)
    apply = jax.jit(lambda x: model.apply(variables, x, train=False))
    np.testing.assert_allclose(apply(tokens), apply(padded), atol=1e-5)


def test_token_transformer_rejects_images(lee):
    model = _transformer(lee)
    with pytest.raises(UserError, match=r"\(L,\)"):
        model.check_input_shape((28, 28, 1))
