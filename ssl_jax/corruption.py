"""Input corruptions of the denoising autoencoder and the penalties of the sparse and the
contractive ones.

Notes 002 (denoising autoencoders, Vincent et al. 2008/2010) and 004 (sparse and contractive
autoencoders).
A corruption returns the corrupted input x̃ and the mask of the pixels it changed, so a loss
can weight the error on corrupted pixels (α) apart from the clean ones (β). Pure functions of
arrays; every one works under ``jax.jit``.
"""

import jax
import jax.numpy as jnp

from ssl_jax.precision import at_least_float32

CORRUPTIONS = ("none", "gaussian", "masking", "salt_and_pepper")
SPARSITY_PENALTIES = ("none", "l1", "kl")
CONTRACTIONS = ("none", "exact", "projection")


def gaussian_noise(key, x, sigma):
    """x̃ = x + ε, ε ~ N(0, σ² I): isotropic additive noise; every pixel counts as corrupted."""
    return x + sigma * jax.random.normal(key, x.shape, x.dtype), jnp.ones(x.shape, bool)


def masking_noise(key, x, fraction):
    """Each pixel independently set to 0 with probability ``fraction`` (ν)."""
    mask = jax.random.bernoulli(key, fraction, x.shape)
    return jnp.where(mask, jnp.zeros_like(x), x), mask


def salt_and_pepper(key, x, fraction):
    """Each pixel independently, with probability ``fraction`` (ν), set to 0 or 1 (each ½):
    the minimum and maximum of the pixel range."""
    mask_key, value_key = jax.random.split(key)
    mask = jax.random.bernoulli(mask_key, fraction, x.shape)
    salt = jax.random.bernoulli(value_key, 0.5, x.shape).astype(x.dtype)
    return jnp.where(mask, salt, x), mask


def corrupt(key, x, kind: str, level):
    """``(x̃, corrupted mask)`` for corruption ``kind`` (`CORRUPTIONS`) at ``level``: σ for
    ``"gaussian"``, the fraction ν for ``"masking"`` and ``"salt_and_pepper"``."""
    if kind == "none":
        return x, jnp.zeros(x.shape, bool)
    return {
        "gaussian": gaussian_noise,
        "masking": masking_noise,
        "salt_and_pepper": salt_and_pepper,
    }[kind](key, x, level)


def weighted_reconstruction_error(per_pixel, corrupted, alpha, beta):
    """Σ over pixels of α·err on corrupted pixels + β·err on the others, averaged over the batch.

    L = (1/B) Σ_b [α Σ_{p ∈ J(x̃_b)} err_bp + β Σ_{p ∉ J(x̃_b)} err_bp]   (notes 002; Vincent
    et al. 2010 §4.2, "emphasised" denoising), J the corrupted pixels. α = β = 1 is the plain
    sum; β = 0 scores only the reconstruction of what was destroyed.
    """
    weights = jnp.where(corrupted, alpha, beta)
    weighted = at_least_float32(per_pixel) * weights
    return weighted.reshape(weighted.shape[0], -1).sum(axis=-1).mean()


def l1_sparsity(code):
    """(1/B) Σ_b Σ_j |c_bj|: the L1 penalty that drives most code units to 0 (notes 004)."""
    code = at_least_float32(code)
    return jnp.abs(code).reshape(code.shape[0], -1).sum(axis=-1).mean()


def kl_sparsity(activations, target):
    """Σ_j KL(ρ ‖ ρ̂_j) = Σ_j ρ log(ρ/ρ̂_j) + (1 − ρ) log((1 − ρ)/(1 − ρ̂_j)).

    ρ̂_j = (1/B) Σ_b a_bj is unit j's mean activation over the batch, a ∈ (0, 1) (sigmoid
    units), ρ the target activity (notes 004; Ng's sparse autoencoder). Zero iff every ρ̂_j = ρ.
    """
    mean = jnp.clip(at_least_float32(activations).mean(axis=0), 1e-6, 1 - 1e-6)
    return jnp.sum(
        target * jnp.log(target / mean) + (1 - target) * jnp.log((1 - target) / (1 - mean))
    )


def jacobian_frobenius_exact(fn, x):
    """(1/B) Σ_b ‖∂f(x_b)/∂x_b‖²_F, computed exactly: the contractive penalty (notes 004;
    Rifai et al. 2011), ‖J‖²_F = Σ_{j,i} (∂c_j/∂x_i)².

    ``fn`` maps a batch [B, ...] to codes [B, C] one example at a time (no batch norm in train
    mode: its batch statistics would couple the examples). One reverse-mode pass per code unit,
    vmapped over the C one-hot cotangents, gives row j of every example's Jacobian at once.
    Cost: C vector-Jacobian products, about C × (forward + backward) of the encoder, and a
    [C, B, D] array of rows: the choice for small codes.
    """
    codes, vjp = jax.vjp(fn, x)
    batch, code_dim = codes.shape
    one_hots = jnp.broadcast_to(
        jnp.eye(code_dim, dtype=codes.dtype)[:, None], (code_dim, *codes.shape)
    )
    (rows,) = jax.vmap(vjp)(one_hots)  # [C, B, ...]: ∂c_bj/∂x_b for every j
    return jnp.sum(jnp.square(at_least_float32(rows))) / batch


def jacobian_frobenius_projected(fn, x, key, num_projections: int):
    """An unbiased estimate of (1/B) Σ_b ‖J_b‖²_F from ``num_projections`` (M) random
    directions: ‖J‖²_F = tr(JᵀJ) = E_v ‖J v‖² for any v with E[v vᵀ] = I (Hutchinson's
    estimator); v has independent ±1 entries (Rademacher), whose variance, 2(‖JᵀJ‖²_F −
    Σ_i (JᵀJ)²_ii)/M per example, is below a Gaussian v's 2‖JᵀJ‖²_F/M.

    Each J v is one forward-mode product (a JVP), so the cost is M JVPs, about M × 1.5
    forwards, whatever the code size: the choice for large codes. ``fn`` as in
    `jacobian_frobenius_exact`.
    """
    directions = jax.random.rademacher(key, (num_projections, *x.shape), x.dtype)
    jvps = jax.vmap(lambda v: jax.jvp(fn, (x,), (v,))[1])(directions)  # [M, B, C]
    return jnp.sum(jnp.square(at_least_float32(jvps))) / (num_projections * x.shape[0])
