"""word2vec: the losses against NumPy references, the sampling statistics, and learning on lee."""

import heapq
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssl_jax.config import base_config
from ssl_jax.data.spec import ArraySpec, Vocabulary, decoded_spec
from ssl_jax.data.text import load_lee
from ssl_jax.errors import UserError
from ssl_jax.objectives import word2vec as w2v


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _config(**objective):
    c = base_config()
    c.dataset = "lee"
    fields = dict(mode="skipgram", loss="negative_sampling", dim=16, window=2, negatives=3)
    c.objective = ml_collections.ConfigDict(dict(name="word2vec", **{**fields, **objective}))
    return c


@pytest.fixture(scope="module")
def lee():
    return load_lee()


# --- the losses against references written from the formulas ---------------------------------

RNG = np.random.default_rng(0)
VOCAB, DIM, WINDOW, K = 9, 4, 2, 3
TOKENS = np.array([[2, 5, 3, 8, 4, 0], [7, 2, 6, 0, 0, 0]], np.int32)
EMBEDDING = RNG.normal(size=(VOCAB, DIM)).astype(np.float32)
OUTPUT = RNG.normal(size=(VOCAB, DIM)).astype(np.float32)
NOISE = RNG.integers(2, VOCAB, size=(*TOKENS.shape, K)).astype(np.int32)


def _contexts(key):
    contexts, mask = w2v.context_windows(jnp.asarray(TOKENS), WINDOW, key)
    return np.asarray(contexts), np.asarray(mask)


def _pairs(mask):
    """(row, centre position, context position) of every masked pair, offsets −W..−1, 1..W."""
    offsets = [*range(-WINDOW, 0), *range(1, WINDOW + 1)]
    return [(b, t, t + offsets[c]) for b, t, c in zip(*np.nonzero(mask), strict=True)]


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_negative_sampling_loss_matches_numpy_reference(mode):
    _, mask = _contexts(jax.random.key(3))
    h, pair_mask = w2v.input_vectors(jnp.asarray(EMBEDDING), jnp.asarray(TOKENS), mask, mode)
    value, pairs = w2v.negative_sampling_loss(h, OUTPUT, TOKENS, NOISE, pair_mask)

    def pair_loss(h, b, t):  # −log σ(u_wᵀh) − Σ_k log σ(−u_kᵀh)
        loss = -np.log(_sigmoid(OUTPUT[TOKENS[b, t]] @ h))
        return loss - sum(np.log(_sigmoid(-OUTPUT[n] @ h)) for n in NOISE[b, t])

    losses = []
    if mode == "skipgram":  # one pair per (centre, context): h = v_context
        losses = [pair_loss(EMBEDDING[TOKENS[b, j]], b, t) for b, t, j in _pairs(mask)]
    else:  # one pair per centre: h = mean of v over its contexts
        by_centre = {}
        for b, t, j in _pairs(mask):
            by_centre.setdefault((b, t), []).append(EMBEDDING[TOKENS[b, j]])
        losses = [pair_loss(np.mean(vs, axis=0), b, t) for (b, t), vs in by_centre.items()]
    assert float(pairs) == len(losses) > 0
    assert float(value) == pytest.approx(np.mean(losses), rel=1e-5)


def test_negative_sampling_noise_per_pair_and_sum_reduction():
    _, mask = _contexts(jax.random.key(5))
    h, pair_mask = w2v.input_vectors(jnp.asarray(EMBEDDING), jnp.asarray(TOKENS), mask, "skipgram")
    noise = RNG.integers(2, VOCAB, size=(*mask.shape, K)).astype(np.int32)  # [B, L, 2W, K]
    value, pairs = w2v.negative_sampling_loss(h, OUTPUT, TOKENS, noise, pair_mask, "sum")
    offsets = [*range(-WINDOW, 0), *range(1, WINDOW + 1)]
    losses = []
    for b, t, c in zip(*np.nonzero(mask), strict=True):
        v = EMBEDDING[TOKENS[b, t + offsets[c]]]
        loss = -np.log(_sigmoid(OUTPUT[TOKENS[b, t]] @ v))
        losses.append(loss - sum(np.log(_sigmoid(-OUTPUT[n] @ v)) for n in noise[b, t, c]))
    assert float(pairs) == len(losses) > 0
    assert float(value) == pytest.approx(np.sum(losses), rel=1e-5)


def test_skipped_target_noise_and_logit_limit_match_the_reference_update():
    """gensim's per-pair step: noise words equal to the target take no term, and a term whose
    logit has |u·h| ≥ max_logit takes no gradient (its loss still counts)."""
    _, mask = _contexts(jax.random.key(7))
    h, pair_mask = w2v.input_vectors(jnp.asarray(EMBEDDING), jnp.asarray(TOKENS), mask, "skipgram")
    noise = RNG.integers(2, VOCAB, size=(*mask.shape, K)).astype(np.int32)
    noise[..., 0] = TOKENS[..., None]  # every pair's first noise word is its target
    limit = 1.5

    def loss(output):
        return w2v.negative_sampling_loss(
            h, output, TOKENS, noise, pair_mask, "sum", skip_target_noise=True, max_logit=limit
        )[0]

    value, grad = jax.value_and_grad(loss)(jnp.asarray(OUTPUT))
    offsets = [*range(-WINDOW, 0), *range(1, WINDOW + 1)]
    total, expected, limited = 0.0, np.zeros_like(OUTPUT), 0
    for b, t, c in zip(*np.nonzero(mask), strict=True):
        v, target = EMBEDDING[TOKENS[b, t + offsets[c]]], TOKENS[b, t]
        terms = [(target, 1.0)] + [(n, 0.0) for n in noise[b, t, c] if n != target]
        for word, label in terms:  # ℓ = −log σ(±u·v); ∂ℓ/∂u = (σ(u·v) − label)·v
            logit = OUTPUT[word] @ v
            total -= np.log(_sigmoid(logit if label else -logit))
            if abs(logit) < limit:
                expected[word] += (_sigmoid(logit) - label) * v
            else:
                limited += 1
    assert limited > 0
    assert float(value) == pytest.approx(total, rel=1e-5)
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-4, atol=1e-5)


def test_cbow_full_update_gives_every_context_the_whole_gradient_of_the_mean():
    _, mask = _contexts(jax.random.key(6))
    tokens, embedding = jnp.asarray(TOKENS), jnp.asarray(EMBEDDING)

    def h_sum(table, full):
        h, pair_mask = w2v.input_vectors(table, tokens, mask, "cbow", full)
        return h, jnp.sum(jnp.where(pair_mask[..., None], h, 0.0))

    mean_h, _ = h_sum(embedding, False)
    full_h, _ = h_sum(embedding, True)
    np.testing.assert_allclose(full_h, mean_h, rtol=1e-6)  # same value: the mean
    exact = np.asarray(jax.grad(lambda e: h_sum(e, False)[1])(embedding))
    full = np.asarray(jax.grad(lambda e: h_sum(e, True)[1])(embedding))
    # d Σ_centres Σ_d h / d v_w: 1/count per context use (exact) or 1 per use (full).
    offsets = [*range(-WINDOW, 0), *range(1, WINDOW + 1)]
    expected_exact, expected_full = np.zeros(VOCAB), np.zeros(VOCAB)
    for b, t in {(b, t) for b, t, _ in zip(*np.nonzero(mask), strict=True)}:
        used = [TOKENS[b, t + offsets[c]] for c in np.flatnonzero(mask[b, t])]
        for w in used:
            expected_exact[w] += 1 / len(used)
            expected_full[w] += 1
    np.testing.assert_allclose(exact, np.repeat(expected_exact[:, None], DIM, 1), rtol=1e-5)
    np.testing.assert_allclose(full, np.repeat(expected_full[:, None], DIM, 1), rtol=1e-5)


def _reference_huffman_lengths(counts):
    """Code length of each word by merging the two least frequent subtrees (sets of words)."""
    heap = [(c, i, (i,)) for i, c in enumerate(counts) if c > 0]
    heapq.heapify(heap)
    depth = {i: 0 for _, i, _ in heap}
    order = len(counts)
    while len(heap) > 1:
        c0, _, a = heapq.heappop(heap)
        c1, _, b = heapq.heappop(heap)
        for word in a + b:
            depth[word] += 1
        heapq.heappush(heap, (c0 + c1, order, a + b))
        order += 1
    return depth


def test_huffman_tree_is_optimal_and_its_leaf_probabilities_sum_to_one():
    counts = np.array([0, 0, 50, 20, 20, 9, 7, 5, 1], np.int64)
    points, codes, lengths = w2v.huffman_tree(counts)
    expected = _reference_huffman_lengths(counts)
    # Optimal: the same total weighted code length as the reference merge (ties may differ).
    assert sum(counts[i] * lengths[i] for i in expected) == sum(
        counts[i] * d for i, d in expected.items()
    )
    assert lengths[0] == lengths[1] == 0  # reserved entries have no path
    paths = {tuple(codes[i, : lengths[i]]) for i in expected}
    assert len(paths) == len(expected)  # distinct, prefix-free codes:
    assert not any(a != b and b[: len(a)] == a for a in paths for b in paths)
    assert np.all(points[:, 0][lengths > 0] == len(expected) - 2)  # every path starts at the root
    # Σ_w Π_j σ((1 − 2 d_j) θ_{n_j}ᵀ h) = 1 for any θ and h: a proper distribution over words.
    theta = RNG.normal(size=(VOCAB, DIM))
    h = RNG.normal(size=DIM)
    total = sum(
        np.prod(
            [_sigmoid((1 - 2 * codes[w, j]) * theta[points[w, j]] @ h) for j in range(lengths[w])]
        )
        for w in expected
    )
    assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_hierarchical_softmax_loss_matches_numpy_reference(mode):
    counts = np.array([0, 0, 50, 20, 20, 9, 7, 5, 1], np.int64)
    points, codes, lengths = w2v.huffman_tree(counts)
    _, mask = _contexts(jax.random.key(4))
    h, pair_mask = w2v.input_vectors(jnp.asarray(EMBEDDING), jnp.asarray(TOKENS), mask, mode)
    value, pairs = w2v.hierarchical_softmax_loss(
        h, OUTPUT, TOKENS, points, codes, lengths, pair_mask
    )

    def pair_loss(h, word):  # −Σ_j log σ((1 − 2 d_j) θ_{n_j}ᵀ h)
        return -sum(
            np.log(_sigmoid((1 - 2 * codes[word, j]) * OUTPUT[points[word, j]] @ h))
            for j in range(lengths[word])
        )

    if mode == "skipgram":
        losses = [pair_loss(EMBEDDING[TOKENS[b, j]], TOKENS[b, t]) for b, t, j in _pairs(mask)]
    else:
        by_centre = {}
        for b, t, j in _pairs(mask):
            by_centre.setdefault((b, t), []).append(EMBEDDING[TOKENS[b, j]])
        losses = [pair_loss(np.mean(vs, axis=0), TOKENS[b, t]) for (b, t), vs in by_centre.items()]
    assert float(pairs) == len(losses) > 0
    assert float(value) == pytest.approx(np.mean(losses), rel=1e-5)


# --- sampling statistics ------------------------------------------------------------------------


def test_keep_probability_is_mikolovs_formula():
    counts = np.array([0, 0, 900, 90, 9, 1])
    keep = w2v.keep_probabilities(counts, sample=0.01)
    threshold = 0.01 * 1000
    for c, p in zip(counts[2:], keep[2:], strict=True):
        assert p == pytest.approx(min(1.0, (np.sqrt(c / threshold) + 1) * threshold / c), rel=1e-6)
    assert keep[0] == keep[1] == 0 and keep[5] == 1.0
    np.testing.assert_array_equal(w2v.keep_probabilities(counts, sample=0), [0, 0, 1, 1, 1, 1])


def test_subsampling_keeps_each_word_at_its_rate_and_closes_gaps():
    keep = jnp.array([0.0, 0.0, 0.2, 0.5, 1.0])
    row = jnp.array([2, 3, 4, 2, 3, 4, 2, 3, 0, 0], jnp.int32)
    tokens = jnp.tile(row, (20_000, 1))
    kept = np.asarray(w2v.subsample(tokens, keep, jax.random.key(0)))
    for word, rate in ((2, 0.2), (3, 0.5), (4, 1.0)):
        measured = (kept == word).sum() / (np.asarray(tokens) == word).sum()
        assert measured == pytest.approx(rate, abs=0.01)
    # Kept tokens come first, in their original order; the rest is padding.
    assert np.all(np.diff((kept == 0).astype(int), axis=1) >= 0)
    first = kept[0][kept[0] > 0].tolist()
    it = iter(row.tolist())
    assert all(any(w == x for x in it) for w in first)  # a subsequence of the row


def test_noise_draws_follow_the_unigram_to_the_three_quarters():
    counts = np.array([0, 0, 1000, 300, 50, 10, 1], np.int64)
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(w2v.noise_distribution(counts), expected, rtol=1e-12)
    threshold, alias = w2v.alias_table(expected)
    ids = np.asarray(
        w2v.sample_noise(jax.random.key(0), jnp.asarray(threshold), jnp.asarray(alias), (10**6,))
    )
    measured = np.bincount(ids, minlength=len(counts)) / len(ids)
    assert measured[0] == measured[1] == 0  # padding and [MASK] are never noise
    np.testing.assert_allclose(measured, expected, atol=2e-3)
    assert np.abs(measured - expected).sum() / 2 < 0.003  # total variation


def test_dynamic_window_reach_is_uniform_and_pairs_stay_inside_the_window():
    window, length = 4, 11
    tokens = jnp.full((20_000, length), 5, jnp.int32).at[:, 9:].set(0)  # two padding slots
    contexts, mask = w2v.context_windows(tokens, window, jax.random.key(1))
    contexts, mask = np.asarray(contexts), np.asarray(mask)
    # Centre 4 (no edge within 4): its contexts are b on each side, b uniform in 1..4.
    left, right = mask[:, 4, :window].sum(1), mask[:, 4, window:].sum(1)
    np.testing.assert_array_equal(left, right)
    frequencies = np.bincount(left, minlength=window + 1)[1:] / len(left)
    np.testing.assert_allclose(frequencies, 0.25, atol=0.015)
    # The nearest offsets are used first: offset ±o is in use iff o ≤ b.
    assert np.all(mask[:, 4, window - 1] >= mask[:, 4, 0])
    # Never padding, never outside the window, never a padding centre.
    assert np.all(contexts[mask] == 5)
    assert not mask[:, 0, :window].any() and not mask[:, 8, window + 1 :].any()
    assert not mask[:, 9:].any()


# --- the objective ------------------------------------------------------------------------------


def test_embedding_representation_of_one_token_is_its_vector(lee):
    objective = w2v.make(_config(), decoded_spec(lee.spec))
    params, _, _ = objective.init(jax.random.key(0), None)
    rep = objective.representations["embedding"]
    assert rep.input == "tokens" and rep.modules == ("embedding",)
    ids = jnp.array([[5], [0], [1700]], jnp.int32)
    table = params["embedding"]["table"]
    vectors = rep.fn(params, {}, ids)
    np.testing.assert_allclose(vectors[0], table[5])
    np.testing.assert_allclose(vectors[1], 0.0)  # padding alone: nothing to average
    np.testing.assert_allclose(
        rep.fn(params, {}, jnp.array([[5, 7, 0]])), [(table[5] + table[7]) / 2]
    )


def test_word2vec_needs_token_counts():
    spec = {"tokens": ArraySpec((8,), "int32", "tokens", num_values=10)}
    with pytest.raises(UserError, match="word counts"):
        w2v.make(_config(), spec)
    images = {"images": ArraySpec((8, 8, 1), "float32", "images")}
    with pytest.raises(UserError, match="tokens"):
        w2v.make(_config(), images)
    vocab = Vocabulary(("[PAD]", "a"), (0, 3))
    spec = {"tokens": ArraySpec((8,), "int32", "tokens", num_values=2, vocabulary=vocab)}
    with pytest.raises(UserError, match="mode"):
        w2v.make(_config(mode="glove"), spec)


@pytest.mark.parametrize("name", ["word2vec_lee.py", "word2vec_lee_cbow.py"])
def test_experiment_configs_build_gensims_update(lee, name):
    from ssl_jax.config import load_config

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = load_config(os.path.join(repo, "experiments", name))
    assert config.objective.mode == ("cbow" if "cbow" in name else "skipgram")
    assert config.optim.decay == "linear" and config.optim.name == "sgd"
    objective = w2v.make(config, decoded_spec(lee.spec))
    params, batch_stats, state = objective.init(jax.random.key(0), None)
    table = np.abs(np.asarray(params["embedding"]["table"]))
    dim = config.objective.dim
    assert 0.99 / dim < table.max() <= 1.0 / dim  # init_scale=1: gensim's ±1/D
    batch = {"tokens": jnp.asarray(lee.train["tokens"][:4])}
    value, out = objective.loss(params, batch_stats, state, batch, jax.random.key(1), 0, group="m")
    # Zero output vectors: every term is log 2, one positive and ≤ 5 noise terms per pair.
    pairs = float(out.metrics["pairs"])
    assert pairs > 0 and np.log(2) * pairs < float(value) <= 6 * np.log(2) * pairs + 1e-3


def _train(objective, dataset, tx, epochs: int, seed: int):
    """``epochs`` passes over the shuffled windows, one jitted scan per epoch."""
    import optax

    windows = dataset.train["tokens"]
    batch = 16
    steps = -(-len(windows) // batch)
    key = jax.random.key(seed)
    params, batch_stats, state = objective.init(key, None)

    def step(carry, inputs):
        params, opt_state = carry
        tokens, step_key = inputs
        grads, _ = jax.grad(objective.loss, has_aux=True)(
            params, batch_stats, state, {"tokens": tokens}, step_key, 0, group="model"
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    epoch = jax.jit(lambda carry, tokens, keys: jax.lax.scan(step, carry, (tokens, keys))[0])
    carry = (params, tx.init(params))
    rng = np.random.default_rng(seed)
    padding = np.zeros((steps * batch - len(windows), windows.shape[1]), np.int32)
    for e in range(epochs):
        tokens = np.concatenate([windows[rng.permutation(len(windows))], padding])
        keys = jax.random.split(jax.random.fold_in(key, e + 1), steps)
        carry = epoch(carry, tokens.reshape(steps, batch, -1), keys)
    return params, carry[0]


def test_cbow_on_lee_beats_its_random_init_on_wordsim(lee):
    # Measured with this procedure (CBOW, negative sampling, Adam 1e-2 cosine-decayed, batch 16,
    # 20 epochs), seeds 0, 1, 2: WordSim-353 ρ trained 0.21, 0.36, 0.17 vs random init 0.00,
    # 0.15, −0.02, gains 0.21, 0.21, 0.19 (60 pairs in the vocabulary, so a random ρ spreads by
    # ~0.13); 10 epochs gave gains of only 0.17, 0.11, 0.19. Seed 0 is run here: the threshold
    # 0.1 leaves a margin of ≥ 0.09 on every measured seed. ~14 s of training on 2 busy cores.
    import optax

    objective = w2v.make(
        _config(mode="cbow", dim=100, window=5, negatives=5), decoded_spec(lee.spec)
    )
    steps = 20 * -(-len(lee.train["tokens"]) // 16)
    tx = optax.adam(optax.cosine_decay_schedule(1e-2, steps))
    initial, trained = _train(objective, lee, tx, epochs=20, seed=0)
    embed = objective.representations["embedding"].fn

    def wordsim(params):
        table = np.asarray(embed(params, {}, jnp.arange(len(lee.vocabulary))[:, None]))
        return lee.evaluate_words(lambda ids: table[ids])["wordsim353_spearman"]

    assert wordsim(trained) > wordsim(initial) + 0.1
