"""Latent-variable pieces of the compression objectives, as pure functions of arrays.

Notes 001 §4 (variational autoencoders, the ELBO, the information bottleneck) and 004 (VAE):
the diagonal-Gaussian posterior q(z|x) = N(μ, diag σ²), its reparameterised sample, its
closed-form KL to the standard normal prior, and the Bernoulli likelihood of pixels in [0, 1].
Every input goes through ``at_least_float32`` (bfloat16 activations are reduced in float32; the
float64 exactness mode stays float64).
"""

import jax
import jax.numpy as jnp
import optax

from ssl_jax.precision import at_least_float32


def split_gaussian(stats):
    """[..., 2L] → (μ, log σ²), each [..., L]: the posterior head's output halves."""
    stats = at_least_float32(stats)
    mean, log_variance = jnp.split(stats, 2, axis=-1)
    return mean, log_variance


def reparameterize(key, mean, log_variance):
    """z = μ + σ ⊙ ε, ε ~ N(0, I): a sample of N(μ, diag σ²) differentiable in μ and σ."""
    noise = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * log_variance) * noise


def gaussian_kl(mean, log_variance):
    """KL(N(μ, diag σ²) ‖ N(0, I)) per example, in nats: [..., L] → [...].

    KL = ½ Σ_j (μ_j² + σ_j² − log σ_j² − 1)   (Kingma & Welling 2014, appendix B; notes 001 §4).
    """
    mean, log_variance = at_least_float32(mean), at_least_float32(log_variance)
    return 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(log_variance) - log_variance - 1.0, axis=-1)


def gaussian_log_density(z, mean, log_variance):
    """log N(z; μ, diag σ²) summed over the last axis (for Monte-Carlo estimates of the KL)."""
    return -0.5 * jnp.sum(
        jnp.log(2 * jnp.pi) + log_variance + jnp.square(z - mean) / jnp.exp(log_variance), axis=-1
    )


def bernoulli_nll(logits, targets):
    """−log p(x | z) per example, in nats: Σ_p −[x log σ(ℓ) + (1 − x) log(1 − σ(ℓ))].

    For binary x it is the exact negative log-likelihood; for grey levels in [0, 1] it is the
    cross-entropy most VAE papers use (it is not normalised over [0, 1]).
    """
    per_pixel = optax.sigmoid_binary_cross_entropy(at_least_float32(logits), targets)
    return per_pixel.reshape(per_pixel.shape[0], -1).sum(axis=-1)


def active_units(mean, threshold=0.01):
    """The number of latent dimensions whose μ varies across the batch: Var_x[μ_j] > threshold.

    Burda et al. (2016)'s diagnostic of posterior collapse: an inactive dimension carries no
    information about x (its posterior is the prior whatever the input).
    """
    return jnp.sum(jnp.var(at_least_float32(mean), axis=0) > threshold)


def linear_warmup(value, step, warmup_steps):
    """``value`` · min(1, (step + 1) / warmup_steps), or ``value`` when ``warmup_steps`` is 0:
    the KL weight annealed from ~0 (Bowman et al. 2016), which keeps the decoder from ignoring
    z early on."""
    if not warmup_steps:
        return jnp.asarray(value, jnp.float32)
    ramp = jnp.minimum(1.0, (jnp.asarray(step, jnp.float32) + 1.0) / warmup_steps)
    return value * ramp
