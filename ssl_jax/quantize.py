"""Discrete latent codes, as pure functions of arrays: vector quantisation and Gumbel-softmax.

Notes 004 ("Latent code 离散表示": discrete codes are easier to interpret or cluster; the slides
cite the Gumbel-softmax, Jang et al. 2017, arXiv:1611.01144, and the VQ-VAE, van den Oord et
al. 2017, arXiv:1711.00937), 001 §3.2 (latent-variable models). Used by
`ssl_jax.objectives.vq_vae` and `ssl_jax.objectives.gumbel_vae`.

**Vector quantisation.** Each encoder output z ∈ R^D is replaced by its nearest codebook
vector e_k, k = argmin_j ‖z − e_j‖². The argmin has no gradient, so the decoder's gradient at
z_q is copied onto z (the straight-through estimator): z_q = z + sg[e_k − z], equal to e_k in
the forward pass and to z's identity in the backward one. The codebook and the encoder are then
pulled together by two terms (van den Oord et al., eq. 3):

    codebook    ‖sg[z] − e_k‖²   (moves e_k only)
    commitment  β‖z − sg[e_k]‖²  (moves z only; β = 0.25 in the paper)

Instead of the codebook term the codebook can follow an exponential moving average of the
vectors assigned to each code (the paper's appendix A.1), with decay γ and Laplace smoothing ε
of the counts (so a code never divides by zero):

    N_k ← γ N_k + (1 − γ) n_k,        m_k ← γ m_k + (1 − γ) Σ_{i: k_i = k} z_i,
    Ñ_k = (N_k + ε) / (Σ_j N_j + K ε) · Σ_j N_j,        e_k = m_k / Ñ_k

where n_k counts the batch's vectors assigned to code k. A code that no vector chooses gets no
update from either rule and stays dead; a restart moves each code unused for a number of steps
onto a random encoder output of the batch (Dhariwal et al. 2020, Jukebox §2.2).

**Gumbel-softmax.** A sample of Categorical(softmax(ℓ)) is argmax_k (ℓ_k + g_k) with g_k
i.i.d. Gumbel(0, 1) (the Gumbel-max trick); its relaxation y = softmax((ℓ + g) / τ) is
differentiable in ℓ and tends to the one-hot sample as τ → 0. The straight-through "hard"
sample is one_hot(argmax y) + y − sg[y]: one-hot forward, the soft sample's gradient backward.
The temperature is annealed, τ_t = max(τ_min, τ_0 · exp(−r t)) (Jang et al. §4).

Distances, losses and statistics are reduced in float32 or wider (`at_least_float32`).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ssl_jax.precision import at_least_float32

# --- vector quantisation -------------------------------------------------------------------


def nearest_code(z, codebook):
    """Index of the nearest codebook vector of each z: [..., D], [K, D] → [...] int32.

    ‖z − e_k‖² = ‖z‖² − 2 z·e_k + ‖e_k‖², of which ‖z‖² does not depend on k.
    """
    z, codebook = at_least_float32(z), at_least_float32(codebook)
    distances = -2.0 * z @ codebook.T + jnp.sum(jnp.square(codebook), axis=-1)
    return jnp.argmin(distances, axis=-1).astype(jnp.int32)


def straight_through(z, e):
    """z + sg[e − z]: the value of ``e``, the gradient of ``z`` (the decoder's gradient at the
    quantised vector is passed to the encoder output unchanged)."""
    return z + jax.lax.stop_gradient(e - z)


def quantize(z, codebook):
    """Nearest-codebook quantisation with the straight-through estimator.

    Args:
      z: [..., D] encoder outputs.
      codebook: [K, D].

    Returns:
      ``(z_q, indices, e)``: z_q [..., D] equal to e in value with z's gradient; the chosen
      codes [...]; e [..., D] the chosen codebook vectors, differentiable in the codebook
      (for `codebook_loss`).
    """
    indices = nearest_code(jax.lax.stop_gradient(z), jax.lax.stop_gradient(codebook))
    e = jnp.take(codebook, indices, axis=0)
    return straight_through(z, e), indices, e


def codebook_loss(z, e):
    """‖sg[z] − e‖² per vector: [..., D] → [...]; its gradient moves the codebook only."""
    z, e = at_least_float32(z), at_least_float32(e)
    return jnp.sum(jnp.square(jax.lax.stop_gradient(z) - e), axis=-1)


def commitment_loss(z, e):
    """‖z − sg[e]‖² per vector (the objective weights it by β): [..., D] → [...]; its gradient
    moves the encoder output only."""
    z, e = at_least_float32(z), at_least_float32(e)
    return jnp.sum(jnp.square(z - jax.lax.stop_gradient(e)), axis=-1)


def code_counts(indices, num_codes):
    """n_k, how many of ``indices`` (any shape) chose code k: → [K] float32."""
    one_hot = jax.nn.one_hot(indices.reshape(-1), num_codes, dtype=jnp.float32)
    return one_hot.sum(axis=0)


def code_sums(z, indices, num_codes):
    """Σ_{i: k_i = k} z_i, the sum of the vectors assigned to each code: [..., D] → [K, D]."""
    z = at_least_float32(z).reshape(-1, z.shape[-1])
    one_hot = jax.nn.one_hot(indices.reshape(-1), num_codes, dtype=z.dtype)
    return one_hot.T @ z


def codebook_usage(counts):
    """The fraction of the K codes chosen at least once: [K] counts → scalar in [0, 1]."""
    return jnp.mean(counts > 0)


def usage_entropy(counts):
    """H(p) in nats, p_k = n_k / Σ n, of [K] counts (or probabilities summed or averaged over a
    batch); 0 log 0 = 0. log K when the K codes are used equally, 0 when one takes everything."""
    p = counts / jnp.maximum(counts.sum(), 1.0)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))


def codebook_perplexity(counts):
    """exp(H(p)), p_k = n_k / Σ n: the effective number of codes in use (K when all are used
    equally, 1 when one code takes everything); 0 log 0 = 0."""
    return jnp.exp(usage_entropy(counts))


class EMACodebook(NamedTuple):
    """The codebook of the EMA rule and the moving averages it is computed from."""

    codebook: jax.Array  # [K, D] e_k = m_k / Ñ_k
    cluster_size: jax.Array  # [K] N_k, the moving average of n_k
    cluster_sum: jax.Array  # [K, D] m_k, the moving average of the assigned vectors' sum


def init_ema_codebook(codebook) -> EMACodebook:
    """Moving averages that reproduce ``codebook``: as if each code had been chosen once."""
    return EMACodebook(codebook, jnp.ones(codebook.shape[:1], codebook.dtype), codebook)


def ema_codebook_update(state: EMACodebook, counts, sums, decay, epsilon=1e-5) -> EMACodebook:
    """One EMA step of the codebook (van den Oord et al. 2017, appendix A.1) with Laplace
    smoothing of the counts:

        N ← γN + (1 − γ)n,   m ← γm + (1 − γ)s,   Ñ_k = (N_k + ε) / (ΣN + Kε) · ΣN,   e = m / Ñ

    Args:
      state: the current `EMACodebook`.
      counts: [K] n_k of this batch (`code_counts`).
      sums: [K, D] s_k, the sum of this batch's vectors assigned to k (`code_sums`).
      decay: γ in [0, 1).
      epsilon: ε, the smoothing pseudo-count.
    """
    cluster_size = decay * state.cluster_size + (1 - decay) * counts
    cluster_sum = decay * state.cluster_sum + (1 - decay) * sums
    total = cluster_size.sum()
    smoothed = (cluster_size + epsilon) / (total + cluster_size.shape[0] * epsilon) * total
    return EMACodebook(cluster_sum / smoothed[:, None], cluster_size, cluster_sum)


def restart_candidates(key, z, num_codes):
    """``num_codes`` encoder outputs of the batch drawn at random, distinct when the batch has
    that many: [..., D] → [K, D] (the vectors dead codes restart at)."""
    z = jax.lax.stop_gradient(z).reshape(-1, z.shape[-1])
    n = z.shape[0]
    if n >= num_codes:
        rows = jax.random.permutation(key, n)[:num_codes]
    else:
        rows = jax.random.randint(key, (num_codes,), 0, n)
    return z[rows]


def dead_codes(unused_steps, patience):
    """Codes not chosen for ``patience`` steps or more: [K] int → [K] bool."""
    return unused_steps >= patience


def restart_codes(codebook, dead, candidates):
    """Each dead code moved onto its candidate vector, the others kept: [K, D] → [K, D]."""
    return jnp.where(dead[:, None], candidates, codebook)


def restart_ema_codes(state: EMACodebook, dead, candidates) -> EMACodebook:
    """`restart_codes` for the EMA rule: a restarted code's averages restart as if it had been
    chosen once, by its new vector (so the next EMA steps keep it there until chosen)."""
    return EMACodebook(
        restart_codes(state.codebook, dead, candidates),
        jnp.where(dead, jnp.ones_like(state.cluster_size), state.cluster_size),
        restart_codes(state.cluster_sum, dead, candidates),
    )


def count_unused_steps(unused_steps, counts):
    """Steps since each code was last chosen: 0 where n_k > 0, one more otherwise."""
    return jnp.where(counts > 0, 0, unused_steps + 1).astype(unused_steps.dtype)


# --- Gumbel-softmax ------------------------------------------------------------------------


def sample_gumbel(key, shape, dtype=jnp.float32):
    """Gumbel(0, 1) noise, −log(−log U) with U ~ Uniform(0, 1) (bounded away from 0 and 1)."""
    tiny = jnp.finfo(dtype).tiny
    uniform = jax.random.uniform(key, shape, dtype, minval=tiny, maxval=1.0)
    return -jnp.log(-jnp.log(uniform))


def gumbel_softmax(key, logits, temperature):
    """The relaxed sample softmax((ℓ + g) / τ) over the last axis: [..., K] → [..., K]."""
    logits = at_least_float32(logits)
    noise = sample_gumbel(key, logits.shape, logits.dtype)
    return jax.nn.softmax((logits + noise) / temperature, axis=-1)


def straight_through_one_hot(soft):
    """one_hot(argmax y) + y − sg[y]: one-hot in the forward pass, the soft sample's gradient
    in the backward pass. [..., K] → [..., K]."""
    hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), soft.shape[-1], dtype=soft.dtype)
    return soft + jax.lax.stop_gradient(hard - soft)


def gumbel_softmax_sample(key, logits, temperature, hard: bool):
    """A Gumbel-softmax sample of each categorical variable: soft, or straight-through hard."""
    soft = gumbel_softmax(key, logits, temperature)
    return straight_through_one_hot(soft) if hard else soft


def annealed_temperature(step, initial, rate, floor):
    """τ_t = max(τ_min, τ_0 · exp(−r t)): exponential decay from ``initial`` to ``floor``
    (Jang et al. 2017 §4 anneal τ = max(0.5, exp(−rt)))."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.maximum(floor, initial * jnp.exp(-rate * step))


def categorical_kl_to_uniform(logits):
    """KL(q ‖ Uniform(K)) = Σ_k q_k log q_k + log K of each categorical variable, q = softmax(ℓ),
    summed over the variables: [B, N, K] → [B] nats."""
    logits = at_least_float32(logits)
    log_q = jax.nn.log_softmax(logits, axis=-1)
    kl = jnp.sum(jnp.exp(log_q) * log_q, axis=-1) + jnp.log(logits.shape[-1])
    return kl.sum(axis=-1)
