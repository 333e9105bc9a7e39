"""Colour spaces and the quantised colour targets of colorization (notes 002, Zhang et al. 2016).

**CIE Lab** (D65 white, sRGB primaries), as vectorised ``jnp`` functions of images in [0, 1]:
sRGB is linearised (c ≤ 0.04045: c/12.92, else ((c + 0.055)/1.055)^2.4), mapped to XYZ by the
sRGB matrix, divided by the white point and compressed by f(t) = t^(1/3) (t > (6/29)³, else
t/(3·(6/29)²) + 4/29): L = 116 f(Y) − 16 ∈ [0, 100], a = 500 (f(X) − f(Y)), b = 200 (f(Y) −
f(Z)). ``lab_to_rgb`` inverts each step (and clips to [0, 1]).

**ab bins**: the ab plane cut into ``grid``-sized squares (10, as Zhang et al.), keeping the
squares that some sRGB colour falls in (`ab_bin_centres`, Q ≈ 260–320 by grid; found by
converting a dense lattice of the RGB cube). An ab value's target is a distribution over the
bins: ``soft_encode`` puts Gaussian weights exp(−d²/2σ²) (σ = 5) on its ``k`` = 5 nearest bin
centres, normalised, as in the paper.

**Class rebalancing**: with p̃ the empirical distribution of the bins smoothed by a Gaussian of
σ = 5 in the ab plane and λ = 1/2, each bin gets the weight

    w_q ∝ ((1 − λ) p̃_q + λ / Q)^(−1),   normalised so that Σ_q p̃_q w_q = 1,

and a pixel's loss is multiplied by w of its most likely target bin: rare, saturated colours
count more, so the prediction does not collapse to the desaturated mean of grey-brown.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

# sRGB (linear) → XYZ, D65; and the D65 white point.
RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
WHITE = np.array([0.950456, 1.0, 1.088754])
_DELTA = 6.0 / 29.0


def rgb_to_lab(rgb):
    """[..., 3] sRGB in [0, 1] → [..., 3] Lab (L in [0, 100], a and b about ±110)."""
    rgb = jnp.asarray(rgb)
    linear = jnp.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ jnp.asarray(RGB_TO_XYZ.T, rgb.dtype) / jnp.asarray(WHITE, rgb.dtype)
    f = jnp.where(
        xyz > _DELTA**3,
        jnp.cbrt(jnp.maximum(xyz, _DELTA**3)),
        xyz / (3 * _DELTA**2) + 4.0 / 29.0,
    )
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
    """[..., 3] Lab → [..., 3] sRGB in [0, 1] (colours outside the sRGB gamut are clipped)."""
    lab = jnp.asarray(lab)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = jnp.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = jnp.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0))
    xyz = xyz * jnp.asarray(WHITE, lab.dtype)
    linear = xyz @ jnp.asarray(np.linalg.inv(RGB_TO_XYZ).T, lab.dtype)
    linear = jnp.clip(linear, 0.0, 1.0)
    rgb = jnp.where(
        linear <= 0.0031308,
        12.92 * linear,
        1.055 * jnp.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055,
    )
    return jnp.clip(rgb, 0.0, 1.0)


@functools.cache
def ab_bin_centres(grid: float = 10.0) -> np.ndarray:
    """[Q, 2] centres of the ``grid``-sized ab squares that some sRGB colour falls in."""
    levels = np.linspace(0.0, 1.0, 64)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    ab = np.asarray(rgb_to_lab(cube.astype(np.float64)))[:, 1:]
    cells = np.unique(np.floor(ab / grid).astype(np.int64), axis=0)
    return ((cells + 0.5) * grid).astype(np.float32)


def soft_encode(ab, centres, k: int = 5, sigma: float = 5.0):
    """[..., 2] ab values → [..., Q] target distributions: Gaussian weights on the ``k``
    nearest bin centres (Zhang et al.'s soft encoding), zero elsewhere."""
    distances = jnp.sum((ab[..., None, :] - centres) ** 2, axis=-1)  # [..., Q]
    nearest, index = jax.lax.top_k(-distances, k)
    weights = jax.nn.softmax(nearest / (2 * sigma**2), axis=-1)  # exp(−d²/2σ²), normalised
    one_hot = jax.nn.one_hot(index, centres.shape[0], dtype=ab.dtype)
    return jnp.einsum("...k,...kq->...q", weights, one_hot)


def smoothed_distribution(counts, centres, sigma: float = 5.0):
    """The bins' empirical distribution ``counts`` [Q], smoothed by a Gaussian of ``sigma`` in
    the ab plane (p̃ of the rebalancing) and normalised; uniform while no count is in."""
    distances = jnp.sum((centres[:, None] - centres[None]) ** 2, axis=-1)
    kernel = jnp.exp(-distances / (2 * sigma**2))
    smoothed = kernel @ counts
    total = smoothed.sum()
    uniform = jnp.full_like(smoothed, 1.0 / smoothed.shape[0])
    return jnp.where(total > 0, smoothed / jnp.maximum(total, 1e-12), uniform)


def rebalancing_weights(distribution, mix: float = 0.5):
    """w_q ∝ ((1 − λ) p̃_q + λ/Q)^(−1) with λ = ``mix``, normalised so Σ_q p̃_q w_q = 1."""
    q = distribution.shape[0]
    weights = 1.0 / ((1 - mix) * distribution + mix / q)
    return weights / jnp.sum(distribution * weights)
