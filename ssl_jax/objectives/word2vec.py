"""word2vec: word vectors from predicting words from their neighbours (CBOW and skip-gram).

Notes 002 §2.7 (词向量 word2vec): a word's code is learned either by predicting it from its
context (Continuous Bag Of Words, CBOW) or by predicting its context from it (skip-gram); good
codes put words of similar meaning close together and make analogous relations (country —
capital) parallel. Mikolov et al., "Efficient Estimation of Word Representations in Vector
Space" and "Distributed Representations of Words and Phrases and their Compositionality", 2013.

Everything happens on the device inside `loss`, from the batch of token windows [B, L] and the
step's key, as the reference implementation does it word by word:

1. Subsampling of frequent words (`keep_probabilities`): a word w of count c_w among T training
   words is kept with probability min(1, (sqrt(c_w / (s·T)) + 1) · s·T / c_w), s = ``sample``
   (1e-3, gensim's default); dropped words are removed from the window before pairing, so the
   context reaches past them (`subsample`).
2. Dynamic window (`context_windows`): each centre position draws its window b uniformly in
   1..``window``; its contexts are the tokens at distance 1..b on both sides, within the window
   of the batch (a pair never crosses windows) and never padding.
3. The loss: negative sampling (`negative_sampling_loss`), K = ``negatives`` noise words per
   training pair drawn from the unigram distribution raised to 3/4 (`noise_distribution`), or
   hierarchical softmax (`hierarchical_softmax_loss`) over a Huffman tree of the word counts
   (`huffman_tree`, built once at make time as static [V, P] arrays of path nodes and codes).

As in the reference implementation, each training pair predicts the centre word w_t with the
output vectors u ("output") from an input vector h built from the input vectors v
("embedding", the representation): skip-gram has one pair per (centre, context) with
h = v_{w_c}; CBOW one per centre with h = mean of v over its contexts.

Config fields beyond the sizes (``dim``, ``window``, ``negatives``, ``sample``, ``noise_power``):

- ``reduction``: "mean" (default) or "sum" of the pairs' losses. With "sum", plain SGD at rate
  α moves every pair by α, the reference implementation's per-pair step (experiments/
  word2vec_lee.py uses it).
- ``noise_per_pair``: False (default) draws the K noise words once per centre, shared by its
  pairs; True gives every (centre, context) pair its own K, as the reference does (skip-gram
  only differs; it costs ~2× the step time).
- ``cbow_full_update``: False (default) takes the exact gradient of the mean (each context
  vector gets 1/count of ∂ℓ/∂h); True gives each the whole ∂ℓ/∂h, as the reference
  implementation (and gensim's ``cbow_mean=1``) updates them.
- ``skip_target_noise``: True drops a noise word that equals the pair's target (gensim and
  word2vec.c skip it); False (default) keeps it as a negative.
- ``max_logit``: > 0 stops the gradient of every logit u·h with |u·h| ≥ ``max_logit``, as gensim
  skips the update of a term outside its sigmoid table (MAX_EXP = 6); 0 (default): no limit.
- ``init_scale``: the input vectors start uniform in ±``init_scale``/D: 0.5 (default) is
  word2vec.c's range, 1.0 gensim's.

Modules: ``embedding`` {"table": [V, D]} (v, uniform in ±init_scale/D) and ``output``
{"table": [V, D]} (u, zeros; for hierarchical softmax row n is inner node n of the tree, V − 1
rows used). Representation ``embedding``: tokens [N, L] → mean of v over the non-pad tokens,
so ids [N, 1] give the word vectors.
"""

import heapq

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.data.spec import PAD_ID, require
from ssl_jax.errors import UserError
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, Representation

MODES = ("skipgram", "cbow")
LOSSES = ("negative_sampling", "hierarchical_softmax")
REDUCTIONS = ("mean", "sum")

# The config block ``objective.name=word2vec`` switches to (ssl_jax.config.switch_block); the
# same values as the fallbacks of `make`.
DEFAULTS = dict(
    mode="skipgram",
    loss="negative_sampling",
    dim=100,
    window=5,
    negatives=5,
    sample=1e-3,
    noise_power=0.75,
    reduction="mean",
    noise_per_pair=False,
    cbow_full_update=False,
    skip_target_noise=False,
    max_logit=0.0,
    init_scale=0.5,
)


# --- statistics of the training text, computed once at make time ----------------------------


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """Mikolov's subsampling keep probability of each id, [V] float32 (0 for count 0).

    p_keep(w) = min(1, (sqrt(c_w / (s·T)) + 1) · s·T / c_w), T = Σ c; s ≤ 0 keeps every word.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return (counts > 0).astype(np.float32)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    return np.where(counts > 0, np.minimum(keep, 1.0), 0.0).astype(np.float32)


def noise_distribution(counts, power: float = 0.75) -> np.ndarray:
    """Negative-sampling noise P_n(w) = c_w^power / Σ_u c_u^power, [V] float64."""
    weights = np.asarray(counts, dtype=np.float64) ** power * (np.asarray(counts) > 0)
    return weights / weights.sum()


def huffman_tree(counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Huffman tree of ``counts`` [V] as static paths for hierarchical softmax.

    The leaves are the ids of count > 0; each merge of the two least frequent subtrees makes an
    inner node numbered 0, 1, … in merge order (the root is the last, n − 2 for n leaves). The
    path of a word runs from the root down to its leaf.

    Returns:
      ``points`` [V, P] int32: inner node at each step of the path (0 beyond its end);
      ``codes`` [V, P] int32: 1 when the path goes to the second-merged child, else 0;
      ``lengths`` [V] int32: path length (0 for ids of count 0). P = the longest path.
    """
    counts = np.asarray(counts)
    leaves = [int(i) for i in np.flatnonzero(counts > 0)]
    vocab_size = len(counts)
    if len(leaves) < 2:
        raise UserError("hierarchical softmax needs at least two words of nonzero count.")
    # Heap entries (count, tiebreak, node); leaves are ("leaf", id), inner nodes ("inner", n).
    heap = [(int(counts[i]), i, ("leaf", i)) for i in leaves]
    heapq.heapify(heap)
    parent, branch = {}, {}  # child node → (parent inner node), child → its code bit
    next_inner = 0
    order = vocab_size
    while len(heap) > 1:
        count0, _, node0 = heapq.heappop(heap)
        count1, _, node1 = heapq.heappop(heap)
        inner = ("inner", next_inner)
        parent[node0], branch[node0] = next_inner, 0
        parent[node1], branch[node1] = next_inner, 1
        heapq.heappush(heap, (count0 + count1, order, inner))
        next_inner += 1
        order += 1
    paths = {}
    for i in leaves:
        node, points, codes = ("leaf", i), [], []
        while node in parent:
            points.append(parent[node])
            codes.append(branch[node])
            node = ("inner", parent[node])
        paths[i] = (points[::-1], codes[::-1])
    longest = max(len(p) for p, _ in paths.values())
    points = np.zeros((vocab_size, longest), np.int32)
    codes = np.zeros((vocab_size, longest), np.int32)
    lengths = np.zeros(vocab_size, np.int32)
    for i, (p, c) in paths.items():
        points[i, : len(p)], codes[i, : len(c)], lengths[i] = p, c, len(p)
    return points, codes, lengths


# --- pairs from a batch of windows, on the device ---------------------------------------------


def subsample(tokens, keep_probability, key):
    """Drops each token with probability 1 − p_keep and closes the gaps.

    Args:
      tokens: [B, L] int32 windows, 0-padded.
      keep_probability: [V] float32 (`keep_probabilities`; 0 for padding).
      key: PRNG key.

    Returns:
      [B, L] int32: the kept tokens of each window, in order, moved to the front, 0-padded.
    """
    keep = jax.random.uniform(key, tokens.shape) < keep_probability[tokens]
    keep = keep & (tokens != PAD_ID)
    # The n-th kept token of a row goes to column n; the dropped ones to a column past the end.
    column = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, tokens.shape[1])
    rows = jnp.broadcast_to(jnp.arange(tokens.shape[0])[:, None], tokens.shape)
    return jnp.zeros_like(tokens).at[rows, column].set(tokens, mode="drop")


def context_windows(tokens, window: int, key):
    """Context ids of every position under a dynamic window.

    Each position t draws b_t uniformly in 1..``window``; its contexts are positions t + o for
    the offsets o = −window..−1, 1..window with |o| ≤ b_t, inside the window and not padding
    (nor a padding centre).

    Args:
      tokens: [B, L] int32.
      window: the largest window.
      key: PRNG key.

    Returns:
      ``(contexts [B, L, 2W] int32, mask [B, L, 2W] bool)``, offsets ordered −W..−1, 1..W.
    """
    length = tokens.shape[1]
    offsets = jnp.concatenate([jnp.arange(-window, 0), jnp.arange(1, window + 1)])
    reach = jax.random.randint(key, tokens.shape, 1, window + 1)  # b_t in 1..window
    positions = jnp.arange(length)[:, None] + offsets[None, :]  # [L, 2W]
    inside = (positions >= 0) & (positions < length)
    contexts = tokens[:, jnp.clip(positions, 0, length - 1)]  # [B, L, 2W]
    mask = (
        inside[None]
        & (jnp.abs(offsets)[None, None, :] <= reach[..., None])
        & (contexts != PAD_ID)
        & (tokens != PAD_ID)[..., None]
    )
    return jnp.where(mask, contexts, PAD_ID), mask


def alias_table(probabilities) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table of a distribution [V]: ``(threshold [V] float32, alias [V] int32)``.

    Drawing i uniformly in 0..V−1 and u uniformly in [0, 1), then taking i if u < threshold[i]
    else alias[i], draws id j with probability ``probabilities[j]`` exactly (Vose's
    construction): each of the V columns of height 1/V holds at most two ids.
    """
    scaled = np.asarray(probabilities, dtype=np.float64) * len(probabilities)
    threshold = np.ones(len(scaled))
    alias = np.arange(len(scaled))
    small = [i for i, x in enumerate(scaled) if x < 1.0]
    large = [i for i, x in enumerate(scaled) if x >= 1.0]
    while small and large:
        less, more = small.pop(), large.pop()
        threshold[less], alias[less] = scaled[less], more
        scaled[more] -= 1.0 - scaled[less]
        (small if scaled[more] < 1.0 else large).append(more)
    return threshold.astype(np.float32), alias.astype(np.int32)


def sample_noise(key, threshold, alias, shape):
    """Ids drawn i.i.d. from the distribution of the alias table ``(threshold, alias)``.

    One uniform u per draw gives both the column, ⌊u·V⌋, and the coin, the fraction of u·V
    (one random number instead of the three of a ``randint`` and a ``uniform``). u takes 2²³
    equally spaced values, so each probability is exact up to a relative error of about
    V/2²³ (2·10⁻⁴ for V = 1,752).
    """
    size = threshold.shape[0]
    scaled = jax.random.uniform(key, shape) * size
    column = jnp.minimum(scaled.astype(jnp.int32), size - 1)
    coin = scaled - column
    return jnp.where(coin < threshold[column], column, alias[column]).astype(jnp.int32)


def shifted_windows(x, window: int):
    """[B, L, D] → [B, L, 2W, D]: entry (t, o) is x at position t + o (zeros outside), offsets
    −W..−1, 1..W as in `context_windows`. Slices, not a gather: its gradient is dense."""
    length = x.shape[1]
    padded = jnp.pad(x, ((0, 0), (window, window), (0, 0)))
    offsets = [*range(-window, 0), *range(1, window + 1)]
    return jnp.stack([padded[:, window + o : window + o + length] for o in offsets], axis=2)


def input_vectors(embedding, tokens, mask, mode: str, full_context_update: bool = False):
    """The input vectors h of the training pairs, grouped by centre: [B, L, C, D], mask [B, L, C].

    skip-gram: h = v_{context}, one pair per (centre, context), C = 2W.
    CBOW: h = mean of v over the contexts of the centre, one pair per centre with at least one
    context, C = 1. ``mask`` [B, L, 2W] is the context mask of `context_windows`. With
    ``full_context_update`` the value is the same mean but each context vector receives the whole
    gradient of h rather than 1/count of it, as the reference implementation (and gensim's
    default ``cbow_mean=1``) updates them.
    """
    # One gather of the window's vectors, then shifted copies: the gradient scatters B·L rows
    # into the table instead of B·L·2W.
    vectors = shifted_windows(embedding[tokens], mask.shape[-1] // 2)  # [B, L, 2W, D]
    if mode == "skipgram":
        return vectors, mask
    weights = mask.astype(vectors.dtype)
    count = weights.sum(-1, keepdims=True)  # [B, L, 1]
    total = jnp.einsum("blc,blcd->bld", weights, vectors)
    mean = total / jnp.maximum(count, 1.0)
    if full_context_update:  # forward: the mean; backward: d/dv_c = d/dh for every context
        mean = total + jax.lax.stop_gradient(mean - total)
    return mean[:, :, None, :], count > 0


# --- the losses -----------------------------------------------------------------------------


def negative_sampling_loss(
    h,
    output,
    targets,
    noise,
    mask,
    reduction: str = "mean",
    *,
    skip_target_noise: bool = False,
    max_logit: float = 0.0,
):
    """Negative-sampling loss of word2vec (notes 002 §2.7; Mikolov et al. 2013b, eq. 4).

    For a pair with input vector h and target word w_t, with K noise words w_k ~ P_n:

        ℓ = −log σ(u_{w_t}ᵀ h) − Σ_{k=1..K} log σ(−u_{w_k}ᵀ h),

    and L = Σ_pairs ℓ / #pairs (``reduction="mean"``) or Σ_pairs ℓ (``"sum"``: plain SGD on it
    at rate α takes the reference implementation's step α per pair).

    Pairs come grouped by target: each target has C input vectors (skip-gram: one per
    context word, C = 2W; CBOW: C = 1, the mean of the contexts). Noise ``[..., K]`` is drawn
    once per target and shared by its C pairs, so only [..., K, D] output vectors are gathered
    (each pair still sees K i.i.d. noise words); noise ``[..., C, K]`` gives each pair its own.

    Two details of the reference implementation are options: ``skip_target_noise`` leaves out
    the terms of noise words equal to w_t, and ``max_logit`` > 0 stops the gradient of the terms
    whose logit has |u·h| ≥ max_logit (gensim takes no step on them; their loss still counts).

    Args:
      h: [..., C, D] input vectors.
      output: [V, D] output vectors u.
      targets: [...] int32 target word of each group.
      noise: [..., K] or [..., C, K] int32 noise words of each target or of each pair.
      mask: [..., C] bool, the pairs that count.
      reduction: "mean" or "sum" over the pairs.
      skip_target_noise: drop the noise terms whose word is the target.
      max_logit: 0, or the |logit| from which a term takes no gradient.

    Returns:
      (loss, number of pairs).
    """
    positive = jnp.sum(h * output[targets][..., None, :], axis=-1)  # [..., C]
    if noise.ndim == mask.ndim:  # [..., K]: shared by the target's C pairs
        noise = noise[..., None, :]  # [..., 1, K], broadcast over the pairs
    negative = jnp.sum(h[..., None, :] * output[noise], axis=-1)  # [..., C, K]
    if max_logit > 0:
        positive, negative = (
            jnp.where(jnp.abs(x) < max_logit, x, jax.lax.stop_gradient(x))
            for x in (positive, negative)
        )
    negative_terms = jax.nn.softplus(negative)
    if skip_target_noise:
        negative_terms = jnp.where(noise == targets[..., None, None], 0.0, negative_terms)
    per_pair = jax.nn.softplus(-positive) + negative_terms.sum(-1)
    return reduce_pairs(per_pair, mask, reduction)


def hierarchical_softmax_loss(
    h, output, targets, points, codes, lengths, mask, reduction: str = "mean"
):
    """Hierarchical-softmax loss of word2vec (notes 002 §2.7; Mikolov et al. 2013b, eq. 3).

    The target w_t is the leaf reached from the root of the Huffman tree through the inner
    nodes n_1..n_m (vectors θ_n, rows of ``output``) with codes d_1..d_m ∈ {0, 1}:

        ℓ = −Σ_{j=1..m} log σ((1 − 2 d_j) θ_{n_j}ᵀ h),     L = Σ_pairs ℓ (/ #pairs).

    Args:
      h: [..., C, D] input vectors (grouped by target as in `negative_sampling_loss`).
      output: [≥ V − 1, D] inner-node vectors θ.
      targets: [...] int32 target word of each group.
      points, codes, lengths: `huffman_tree` arrays, [V, P], [V, P], [V].
      mask: [..., C] bool, the pairs that count.
      reduction: "mean" or "sum" over the pairs.

    Returns:
      (loss, number of pairs).
    """
    nodes = output[points[targets]]  # [..., P, D]: one path per target, shared by its C pairs
    logits = jnp.einsum("...cd,...pd->...cp", h, nodes)
    sign = 1.0 - 2.0 * codes[targets].astype(h.dtype)  # [..., P]
    on_path = jnp.arange(points.shape[1]) < lengths[targets][..., None]  # [..., P]
    terms = jax.nn.softplus(-sign[..., None, :] * logits)
    per_pair = jnp.where(on_path[..., None, :], terms, 0.0).sum(-1)
    return reduce_pairs(per_pair, mask, reduction)


def reduce_pairs(values, mask, reduction: str = "mean"):
    """(Σ values over ``mask``, divided by max(#mask, 1) for "mean"; #mask as float32)."""
    count = mask.sum().astype(jnp.float32)
    total = jnp.sum(jnp.where(mask, values, 0.0))
    return (total / jnp.maximum(count, 1.0) if reduction == "mean" else total), count


def mean_embedding(table, tokens):
    """tokens [N, L] → [N, D]: mean of the ``table`` rows of the non-pad tokens (0 if none)."""
    weights = (tokens != PAD_ID).astype(jnp.float32)
    total = jnp.einsum("nl,nld->nd", weights, table[tokens].astype(jnp.float32))
    return total / jnp.maximum(weights.sum(1), 1.0)[:, None]


@register_objective("word2vec")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    mode = cfg.get("mode", "skipgram")
    loss_name = cfg.get("loss", "negative_sampling")
    if mode not in MODES:
        raise UserError(f"word2vec objective.mode must be one of {MODES}, got {mode!r}.")
    if loss_name not in LOSSES:
        raise UserError(f"word2vec objective.loss must be one of {LOSSES}, got {loss_name!r}.")
    spec = require(input_spec, "tokens", "word2vec", kind="tokens")
    if spec.vocabulary is None:
        raise UserError(
            "objective 'word2vec' needs the word counts of the token vocabulary, and this "
            "dataset's tokens have none; use --config.dataset=lee or a text dataset with one."
        )
    counts = np.asarray(spec.vocabulary.counts, dtype=np.int64)
    vocab_size = len(counts)
    dim = int(cfg.get("dim", 100))
    window = int(cfg.get("window", 5))
    negatives = int(cfg.get("negatives", 5))
    reduction = cfg.get("reduction", "mean")
    if reduction not in REDUCTIONS:
        raise UserError(f"word2vec objective.reduction must be one of {REDUCTIONS}.")
    noise_per_pair = bool(cfg.get("noise_per_pair", False))
    full_context_update = bool(cfg.get("cbow_full_update", False))
    skip_target_noise = bool(cfg.get("skip_target_noise", False))
    max_logit = float(cfg.get("max_logit", 0.0))
    init_scale = float(cfg.get("init_scale", 0.5))

    keep_probability = jnp.asarray(keep_probabilities(counts, float(cfg.get("sample", 1e-3))))
    noise_table = tuple(
        jnp.asarray(a)
        for a in alias_table(noise_distribution(counts, cfg.get("noise_power", 0.75)))
    )
    if loss_name == "hierarchical_softmax":
        points, codes, lengths = (jnp.asarray(a) for a in huffman_tree(counts))

    def init(key, sample_batch):
        del sample_batch  # the tables' shapes come from the vocabulary
        bound = init_scale / dim
        table = jax.random.uniform(key, (vocab_size, dim), jnp.float32, -bound, bound)
        params = {
            "embedding": {"table": table},
            "output": {"table": jnp.zeros((vocab_size, dim), jnp.float32)},
        }
        return params, {}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step, group
        sub_key, window_key, noise_key = jax.random.split(key, 3)
        tokens = subsample(batch["tokens"], keep_probability, sub_key)
        contexts, mask = context_windows(tokens, window, window_key)
        embedding, output = params["embedding"]["table"], params["output"]["table"]
        h, pair_mask = input_vectors(embedding, tokens, mask, mode, full_context_update)
        if loss_name == "negative_sampling":
            shape = pair_mask.shape if noise_per_pair else tokens.shape
            noise = sample_noise(noise_key, *noise_table, (*shape, negatives))
            value, pairs = negative_sampling_loss(
                h,
                output,
                tokens,
                noise,
                pair_mask,
                reduction,
                skip_target_noise=skip_target_noise,
                max_logit=max_logit,
            )
        else:
            value, pairs = hierarchical_softmax_loss(
                h, output, tokens, points, codes, lengths, pair_mask, reduction
            )
        kept = (tokens != PAD_ID).sum() / jnp.maximum((batch["tokens"] != PAD_ID).sum(), 1)
        metrics = {"loss": value, "pairs": pairs, "kept_fraction": kept.astype(jnp.float32)}
        return value, LossOutput(batch_stats, metrics)

    def embed(params, batch_stats, tokens):
        del batch_stats
        return mean_embedding(params["embedding"]["table"], tokens)

    return Objective(
        name="word2vec",
        init=init,
        loss=loss,
        representations={
            "embedding": Representation(fn=embed, input="tokens", modules=("embedding",))
        },
    )
