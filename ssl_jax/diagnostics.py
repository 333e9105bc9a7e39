"""Collapse diagnostics of an embedding, cheap enough to log while pretraining (a leaf module:
objectives import it without the evaluation package).

- ``embedding_std``: the per-dimension standard deviation of L2-normalised embeddings,
  averaged over dimensions (SimSiam's collapse monitor): about 1/√d for embeddings spread over
  the sphere, 0 when every example maps to the same point.
- ``effective_rank``: RankMe (Garrido et al. 2023), exp of the entropy of the normalised
  singular values p_k = σ_k / Σσ (+ε). Features are *not* centred unless ``center=True``.
- ``alignment`` and ``uniformity``: Wang & Isola 2020, on L2-normalised embeddings:
  alignment = E ||f(x) − f(x⁺)||^α (α = 2); uniformity = log E_{i≠j} exp(−t ||f_i − f_j||²)
  (t = 2), via logsumexp.
"""

import jax
import jax.numpy as jnp

EPS = 1e-7


def _unit(z):
    z = z.astype(jnp.promote_types(z.dtype, jnp.float32))
    return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def embedding_std(z):
    """Mean over dimensions of the std over examples of L2-normalised z [N, D]."""
    return jnp.mean(jnp.std(_unit(z), axis=0))


def effective_rank(z, center=False):
    """exp(−Σ_k p_k log p_k), p = σ / Σσ + ε, σ the singular values of z [N, D]."""
    z = z.astype(jnp.promote_types(z.dtype, jnp.float32))
    if center:
        z = z - z.mean(axis=0)
    singular = jnp.linalg.svd(z, compute_uv=False)
    p = singular / jnp.maximum(singular.sum(), 1e-12) + EPS
    return jnp.exp(-jnp.sum(p * jnp.log(p)))


def alignment(z1, z2, alpha=2):
    """E ||ẑ1 − ẑ2||^α over positive pairs (rows of z1 and z2)."""
    return jnp.mean(jnp.linalg.norm(_unit(z1) - _unit(z2), axis=-1) ** alpha)


def uniformity(z, t=2.0):
    """log mean_{i≠j} exp(−t ||ẑ_i − ẑ_j||²)."""
    u = _unit(z)
    n = u.shape[0]
    squared = jnp.maximum(2.0 - 2.0 * u @ u.T, 0.0)
    logits = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, -t * squared)
    return jax.nn.logsumexp(logits) - jnp.log(n * (n - 1.0))


def collapse_diagnostics(z, z2=None) -> dict:
    """All of the above for embeddings z [N, D] (and a second view z2 for alignment)."""
    result = {
        "embedding_std": float(embedding_std(z)),
        "healthy_std": float(1.0 / jnp.sqrt(z.shape[1])),
        "effective_rank": float(effective_rank(z)),
        "effective_rank_centred": float(effective_rank(z, center=True)),
        "uniformity": float(uniformity(z)),
        "dimensions": int(z.shape[1]),
    }
    if z2 is not None:
        result["alignment"] = float(alignment(z, z2))
    return {"protocol": "diagnostics", **result}
