"""Similar-image search: precision@k of nearest-neighbour retrieval (notes 004, autoencoders for
image retrieval, Krizhevsky & Hinton 2011).

Each query retrieves the k gallery items most similar to it (cosine similarity of the
features, or negative Euclidean distance); precision@k is the fraction of those k that share
the query's label, averaged over queries:

    P@k = (1/Q) Σ_q (1/k) Σ_{i ∈ top_k(q)} [y_i = y_q]

With ``leave_one_out=True`` the queries are the gallery itself and each query's own entry is
excluded. Queries are processed in chunks, so the [Q, N] similarity matrix never exists at once.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.errors import UserError
from ssl_jax.evaluation.checks import check_features_and_labels, check_same_dimensions

METRICS = ("cosine", "euclidean")


@functools.partial(jax.jit, static_argnames=("k", "metric"))
def _hits(gallery_x, gallery_y, query_x, query_y, query_index, *, k, metric):
    """[chunk, k] booleans: does the i-th retrieved item share the query's label."""
    if metric == "cosine":
        score = query_x @ gallery_x.T
    else:  # −‖q − g‖², without the query's own norm (constant per query)
        score = 2 * query_x @ gallery_x.T - jnp.sum(jnp.square(gallery_x), axis=1)
    # A query never retrieves itself (index −1 marks queries from outside the gallery).
    own = jnp.arange(gallery_x.shape[0])[None, :] == query_index[:, None]
    score = jnp.where(own, -jnp.inf, score)
    _, index = jax.lax.top_k(score, k)
    return gallery_y[index] == query_y[:, None]


def precision_at_k(
    gallery_x,
    gallery_y,
    query_x=None,
    query_y=None,
    *,
    ks=(1, 10, 50),
    metric="cosine",
    chunk_size=512,
) -> dict:
    """``{"precision": {k: P@k}, "metric", "num_queries", "num_gallery"}``.

    Without ``query_x``/``query_y`` every gallery item queries the others (leave-one-out).
    """
    if metric not in METRICS:
        raise UserError(f"retrieval metric must be one of {METRICS}, got {metric!r}.")
    gallery_x, gallery_y = check_features_and_labels(gallery_x, gallery_y, "gallery")
    leave_one_out = query_x is None
    if leave_one_out:
        query_x, query_y = gallery_x, gallery_y
    else:
        query_x, query_y = check_features_and_labels(query_x, query_y, "query")
        check_same_dimensions(gallery_x, query_x)
    k_max = max(ks)
    available = len(gallery_x) - (1 if leave_one_out else 0)
    if k_max > available:
        raise UserError(
            f"precision@{k_max} needs at least {k_max} gallery items per query, the gallery "
            f"offers {available}; use smaller ks."
        )
    if metric == "cosine":
        normalise = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        gallery_x, query_x = normalise(gallery_x), normalise(query_x)
    hits = []
    for start in range(0, len(query_x), chunk_size):
        stop = min(start + chunk_size, len(query_x))
        index = np.arange(start, stop) if leave_one_out else np.full(stop - start, -1)
        hits.append(
            np.asarray(
                _hits(
                    jnp.asarray(gallery_x),
                    jnp.asarray(gallery_y),
                    jnp.asarray(query_x[start:stop]),
                    jnp.asarray(query_y[start:stop]),
                    jnp.asarray(index),
                    k=k_max,
                    metric=metric,
                )
            )
        )
    hits = np.concatenate(hits)
    return {
        "precision": {k: float(hits[:, :k].mean()) for k in ks},
        "metric": metric,
        "num_queries": len(query_x),
        "num_gallery": len(gallery_x),
    }
