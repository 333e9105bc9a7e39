"""Representational similarity analysis (notes 001 §2.2.1): RSMs and their comparison.

RSA turns each representation into a representational similarity matrix (RSM) between its n
examples, ``K_ij = k(x_i, x_j)`` of the raw rows, and compares the two RSMs by the Spearman rank
correlation of their strict upper triangles (the diagonal carries no information; the lower
triangle repeats the upper). With ``k`` the Pearson correlation this is Kriegeskorte et al.'s
RSA (2008), the field's standard form.
"""

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.errors import UserError, unknown_name
from ssl_jax.similarity import inputs
from ssl_jax.similarity.cka import squared_distances
from ssl_jax.similarity.inputs import as_float, centre_columns, jit_kernel, usable


def _rows_for_kernel(x, kernel):
    # Pearson correlates examples across features: each row is centred first.
    return x - jnp.mean(x, axis=1, keepdims=True) if kernel == "pearson" else x


def _row_has_direction(rows):
    """[n] bool: the row's norm is above rounding noise (8·sqrt(p)·eps of the largest row)."""
    norms = jnp.linalg.norm(rows, axis=1)
    noise = 8.0 * np.sqrt(rows.shape[1]) * jnp.finfo(rows.dtype).eps * jnp.max(norms)
    return norms > noise


def _unit_rows(rows):
    norms = jnp.linalg.norm(rows, axis=1, keepdims=True)
    unit = rows / jnp.where(norms > 0, norms, 1.0)
    return jnp.where(_row_has_direction(rows)[:, None], unit, jnp.nan)


def _pearson_rsm(x):
    unit = _unit_rows(_rows_for_kernel(x, "pearson"))
    return unit @ unit.T


def _cosine_rsm(x):
    unit = _unit_rows(x)
    return unit @ unit.T


def _linear_rsm(x):
    return x @ x.T


def _euclidean_rsm(x):
    # Negative distance, so that larger still means more similar.
    return -jnp.sqrt(squared_distances(x))


RSM_KERNELS = {
    "pearson": _pearson_rsm,
    "cosine": _cosine_rsm,
    "linear": _linear_rsm,
    "euclidean": _euclidean_rsm,
}


def average_ranks(values: jax.Array) -> jax.Array:
    """1-based ranks with ties given their average rank (scipy's ``rankdata`` default). [m]."""
    ordered = jnp.sort(values)
    below = jnp.searchsorted(ordered, values, side="left")
    below_or_equal = jnp.searchsorted(ordered, values, side="right")
    return (below + below_or_equal + 1) / 2.0


def rsm_rows(x: jax.Array, center_columns: bool) -> jax.Array:
    """The rows the RSM kernel sees: x as given, or centred over the examples. [n, p] -> [n, p]."""
    return centre_columns(x) if center_columns else x


def _upper_triangle_positions(n: int) -> np.ndarray:
    """Flat positions of the strict upper triangle of an [n, n] matrix, row by row.

    A NumPy constant indexing the flattened matrix: one gather, which XLA compiles in a
    fraction of the time of a two-index gather with ``jnp.triu_indices``.
    """
    rows, cols = np.triu_indices(n, k=1)
    return rows * n + cols


def rsm_rank_vector(rows: jax.Array, kernel: str) -> jax.Array:
    """Standardised ranks of the RSM's strict upper triangle, [n(n-1)/2].

    rows: [n, p] from `rsm_rows`. The Spearman correlation of two RSMs is the dot product of
    their rank vectors. NaN when the RSM has undefined entries (an example whose Pearson or
    cosine kernel is undefined).
    """
    rsm = RSM_KERNELS[kernel](rows)
    upper = rsm.reshape(-1)[_upper_triangle_positions(rsm.shape[0])]
    ranks = average_ranks(upper)
    centred = ranks - jnp.mean(ranks)
    standardised = centred / jnp.linalg.norm(centred)
    return jnp.where(jnp.all(jnp.isfinite(upper)), standardised, jnp.nan)


def undefined_rows(rows: jax.Array, kernel: str) -> jax.Array:
    """Number of examples whose Pearson or cosine similarity is undefined (a zero row)."""
    if kernel not in ("pearson", "cosine"):
        return jnp.zeros((), jnp.int32)
    return jnp.sum(~_row_has_direction(_rows_for_kernel(rows, kernel)))


@jit_kernel(static_argnames=("kernel", "center_columns"))
def _rsa(x, y, kernel, center_columns):
    x, y = as_float(x), as_float(y)
    defined = usable(x) & usable(y)
    rows_x, rows_y = rsm_rows(x, center_columns), rsm_rows(y, center_columns)
    value = rsm_rank_vector(rows_x, kernel) @ rsm_rank_vector(rows_y, kernel)
    bad_rows = (undefined_rows(rows_x, kernel), undefined_rows(rows_y, kernel))
    return jnp.where(defined, value, jnp.nan), bad_rows


def check_kernel(kernel: str) -> None:
    if kernel not in RSM_KERNELS:
        raise unknown_name("RSA kernel", kernel, RSM_KERNELS)


def undefined_kernel_message(kernel: str, center_columns: bool) -> str:
    """Why a row's kernel is undefined and what to do, for the one-line UserErrors."""
    what = "constant across its features" if kernel == "pearson" else "all zero"
    if center_columns:
        what += " after centring the columns"
    return f"({what}); use kernel='euclidean' or 'linear', or drop those examples."


def rsa(x, y, kernel: str = "pearson", center_columns: bool = False) -> jax.Array:
    """RSA: Spearman correlation of the two RSMs' strict upper triangles (notes 001 §2.2.1).

    x: [n, p1], y: [n, p2] -> [] in [-1, 1]. ``kernel`` gives the RSM entry K_ij for examples
    i, j (rows x_i, x_j):

    - ``"pearson"`` (the notes' and the field's choice): Pearson correlation of x_i and x_j
      across features, i.e. each row centred across its own features, then the cosine;
    - ``"cosine"``: cosine of x_i and x_j;
    - ``"linear"``: x_iᵀx_j;
    - ``"euclidean"``: -||x_i - x_j|| (negated so larger is more similar).

    ``center_columns=False`` (default) is Kriegeskorte et al.'s RSA (2008) as the notes define
    it: the kernel sees the raw rows, so ``K_ij = corr(x_i, x_j)`` is the correlation of the two
    examples' response patterns (``np.corrcoef(x)``). ``center_columns=True`` first subtracts
    each feature's mean over the examples (X̃ = HX, as CKA and CCA do); this makes RSA invariant
    to translating either side but changes the RSM, hence the value, of every kernel except
    ``"euclidean"``.

    Ties get average ranks. Forms n×n matrices. Symmetric; invariant to permuting neurons and to
    isotropic scaling. Default Pearson is invariant to an affine map of each example's
    features (x_i -> a_i x_i + b_i, a_i > 0) but not to translating a feature across examples
    or to orthogonal maps; euclidean is invariant to both; cosine and linear to orthogonal maps
    only (to translations too with ``center_columns=True``). An example whose Pearson
    (constant across features) or cosine (all zero) kernel is undefined raises UserError when
    eager, and gives NaN under jit.
    """
    check_kernel(kernel)
    inputs.check_pair("rsa", x, y, 3, "Spearman needs at least 3 pairs of examples")
    center_columns = bool(center_columns)
    value, (bad_x, bad_y) = _rsa(x, y, kernel, center_columns)
    if inputs.is_concrete(bad_x, bad_y):
        for arg, bad in (("x", bad_x), ("y", bad_y)):
            if int(bad):
                raise UserError(
                    f"rsa: {int(bad)} examples of {arg} have an undefined {kernel} similarity "
                    + undefined_kernel_message(kernel, center_columns)
                )
    return value
