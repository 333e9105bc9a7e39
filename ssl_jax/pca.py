"""Principal component analysis by variance maximisation, and principal angles between subspaces.

Notes 004 (PCA): the first principal direction maximises the variance of the projection,
``max_w wᵀ Σ w`` subject to ``||w|| = 1``; the Lagrangian ``wᵀ Σ w − λ(wᵀw − 1)`` gives
``Σ w = λ w``, so the directions are the eigenvectors of the covariance Σ in order of their
eigenvalues λ (the variance each captures), and the k-dimensional code ``z = Wᵀ(x − x̄)``
with reconstruction ``x̂ = x̄ + W z`` leaves the mean squared error ``Σ_{i>k} λ_i``. A linear
autoencoder trained by gradient descent on the squared error learns the same subspace (Baldi &
Hornik 1989), though not the same basis: `principal_angles` compares subspaces, not bases.

Pure ``jnp`` functions of arrays, jit-compatible (``k`` static).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp


class PCA(NamedTuple):
    mean: jax.Array  # [D] the mean x̄ the data are centred by
    components: jax.Array  # [k, D] unit principal directions, the largest variance first
    explained_variance: jax.Array  # [k] the eigenvalues λ_1 ≥ … ≥ λ_k of the covariance


@functools.partial(jax.jit, static_argnames="k")
def pca(x: jax.Array, k: int) -> PCA:
    """The top-``k`` principal directions of ``x`` [N, D]: eigenvectors of the covariance.

    Σ = (x − x̄)ᵀ(x − x̄) / (N − 1); each direction's sign is fixed so that its largest-magnitude
    coordinate is positive (eigenvectors are defined up to sign).
    """
    x = jnp.asarray(x)
    mean = x.mean(axis=0)
    centred = x - mean
    covariance = centred.T @ centred / (x.shape[0] - 1)
    eigenvalues, eigenvectors = jnp.linalg.eigh(covariance)  # ascending
    components = eigenvectors[:, ::-1][:, :k].T
    biggest = jnp.take_along_axis(
        components, jnp.argmax(jnp.abs(components), axis=1)[:, None], axis=1
    )
    return PCA(mean, components * jnp.sign(biggest), eigenvalues[::-1][:k])


def pca_encode(p: PCA, x: jax.Array) -> jax.Array:
    """The code z = W(x − x̄) [N, k]."""
    return (x - p.mean) @ p.components.T


def pca_reconstruct(p: PCA, x: jax.Array) -> jax.Array:
    """x̂ = x̄ + Wᵀ W (x − x̄): the projection onto the principal subspace."""
    return p.mean + pca_encode(p, x) @ p.components


def reconstruction_error(x: jax.Array, reconstruction: jax.Array) -> jax.Array:
    """(1/N) Σ_n ||x_n − x̂_n||²: squared error summed over dimensions, averaged over examples."""
    return jnp.square(x - reconstruction).reshape(x.shape[0], -1).sum(axis=1).mean()


@jax.jit
def principal_angles(a: jax.Array, b: jax.Array) -> jax.Array:
    """The principal angles (radians, ascending) between the column spaces of a [D, p], b [D, q].

    min(p, q) angles θ_i with cos θ_i the singular values of Q_aᵀ Q_b (Q: orthonormal bases).
    arccos loses precision near 0 (cos θ ≈ 1 − θ²/2), so angles below 45° are taken as the
    arcsin of the singular values of the part of Q_b outside span(Q_a) (Björck & Golub 1973).
    """
    if a.shape[1] < b.shape[1]:
        a, b = b, a
    q_a, _ = jnp.linalg.qr(a)
    q_b, _ = jnp.linalg.qr(b)
    cosines = jnp.clip(jnp.linalg.svd(q_a.T @ q_b, compute_uv=False), 0.0, 1.0)  # descending
    sines = jnp.linalg.svd(q_b - q_a @ (q_a.T @ q_b), compute_uv=False)[::-1]  # ascending
    sines = jnp.clip(sines[: cosines.shape[0]], 0.0, 1.0)
    return jnp.where(cosines > jnp.sqrt(0.5), jnp.arcsin(sines), jnp.arccos(cosines))
