"""Canonical correlation analysis and its relatives (notes 001 §2.2.2): R²_CCA, ρ̄, SVCCA,
PWCCA and R²_LR, all from orthonormal bases of the centred representations (Björck & Golub),
never from an inverted covariance matrix.

Every metric here starts from one SVD per representation, ``X̃ = U Σ Vᵀ`` (`principal_basis`),
keeps the directions above the rank tolerance (and, for SVCCA, the top components), and
compares two such bases through ``Qᵀ Q'``, whose singular values are the canonical
correlations ρ. `all_pairs` reuses one basis per layer for all its pairs.

Rank tolerance: a direction counts when its singular value exceeds
``σ_max · max(n, p) · eps(dtype)`` (NumPy's ``matrix_rank`` default; eps = 1.19e-7 in float32,
2.2e-16 in float64). Directions below it are numerical noise and are dropped.

Degenerate case (notes 001 §2.2.2): the centred data live in an (n-1)-dimensional space, so
when a representation's rank reaches n - 1 its column space contains every direction of the
other and **all canonical correlations are 1 whatever the data**. CCA-based metrics (and R²_LR
when the regressor X is that wide) are then meaningless: an eager call raises UserError, a call
under jit/vmap returns NaN. When ``rank(X̃) + rank(Ỹ) > n - 1`` without either reaching n - 1,
at least ``rank(X̃) + rank(Ỹ) - (n - 1)`` correlations are still forced to 1: the value is
returned with a UserWarning (eager calls and `all_pairs`). Use n well above the ranks compared.
"""

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.errors import UserError
from ssl_jax.similarity import inputs
from ssl_jax.similarity.inputs import as_float, centre_columns, jit_kernel, usable


class PrincipalBasis(NamedTuple):
    """Orthonormal basis of a centred representation x̃: [n, p], r = min(n, p).

    Directions that are not kept (below the rank tolerance, or past SVCCA's k) are zeroed, so
    bases of different layers can be padded to a common r and batched.
    """

    u: jax.Array  # [n, r] left singular vectors of x̃ (principal components of unit length)
    s: jax.Array  # [r] singular values, 0 where not kept
    vt: jax.Array  # [r, p] right singular vectors; PWCCA's weights need them
    rank: jax.Array  # [] int, numerical rank of x̃
    num_kept: jax.Array  # [] int, directions kept (= rank unless truncated)


def _thin_svd(x):
    """x = U diag(s) Vᵀ, thin. For wide x (p > n) a QR of xᵀ first, then the SVD of the n×n
    factor: the same decomposition (no Gram matrix is formed), 2-3× faster on CPU."""
    n, p = x.shape
    if p <= n:
        return jnp.linalg.svd(x, full_matrices=False)
    q, r = jnp.linalg.qr(x.T)  # xᵀ = QR, so x = RᵀQᵀ
    u, s, wt = jnp.linalg.svd(r.T)
    return u, s, wt @ q.T


def principal_basis(x_centred: jax.Array, k: int | None = None, variance=None) -> PrincipalBasis:
    """SVD basis of x_centred: [n, p], rank-aware, optionally truncated for SVCCA.

    k: keep at most the top k components. variance: keep the smallest number of top components
    whose squared singular values reach this fraction of the total, i.e. the smallest k with
    ``Σ_{i<=k} σ_i² >= variance · Σ_i σ_i²`` (notes 001 §2.2.2, Raghu et al.'s 0.99). Both are
    applied by masking, so a data-dependent k works under jit.
    """
    n, p = x_centred.shape
    u, s, vt = _thin_svd(x_centred)
    index = jnp.arange(s.shape[0])
    in_rank = s > s[0] * max(n, p) * jnp.finfo(s.dtype).eps
    kept = in_rank
    if k is not None:
        kept = kept & (index < k)
    if variance is not None:
        energy = s**2
        fraction_before = (jnp.cumsum(energy) - energy) / jnp.sum(energy)
        kept = kept & (fraction_before < variance)
    return PrincipalBasis(
        u=jnp.where(kept[None, :], u, 0.0),
        s=jnp.where(kept, s, 0.0),
        vt=vt,
        rank=jnp.sum(in_rank),
        num_kept=jnp.sum(kept),
    )


# --- Comparisons of two bases (used for one pair and, vmapped, for all pairs) ---------------


def is_degenerate(basis_x: PrincipalBasis, basis_y: PrincipalBasis, n: int) -> jax.Array:
    """True when one side spans all n - 1 centred directions: every ρ is then 1 by construction."""
    return jnp.maximum(basis_x.num_kept, basis_y.num_kept) >= n - 1


def _num_correlations(basis_x, basis_y):
    return jnp.minimum(basis_x.num_kept, basis_y.num_kept)


def correlations_from_bases(basis_x: PrincipalBasis, basis_y: PrincipalBasis) -> jax.Array:
    """Canonical correlations ρ = singular values of QᵀQ' (notes 001 §2.2.2), descending.

    Returns [min(r1, r2)]: the first min(#kept x, #kept y) entries are the correlations
    (clipped to [0, 1] against rounding); the rest, and all of them in the degenerate case, NaN.
    """
    n = basis_x.u.shape[0]
    rho = jnp.linalg.svd(basis_x.u.T @ basis_y.u, compute_uv=False)
    valid = jnp.arange(rho.shape[0]) < _num_correlations(basis_x, basis_y)
    valid = valid & ~is_degenerate(basis_x, basis_y, n)
    return jnp.where(valid, jnp.clip(rho, 0.0, 1.0), jnp.nan)


def r2_cca_from_bases(basis_x: PrincipalBasis, basis_y: PrincipalBasis) -> jax.Array:
    """R²_CCA = ||ρ||²/p = ||QᵀQ'||²_F / p with p = min(rank X̃, rank Ỹ) (notes 001 §2.2.2)."""
    n = basis_x.u.shape[0]
    value = jnp.sum((basis_x.u.T @ basis_y.u) ** 2) / _num_correlations(basis_x, basis_y)
    return jnp.where(is_degenerate(basis_x, basis_y, n), jnp.nan, value)


def mean_rho_from_bases(basis_x: PrincipalBasis, basis_y: PrincipalBasis) -> jax.Array:
    """ρ̄ = Σ_i ρ_i / p = ||QᵀQ'||_* / p (notes 001 §2.2.2), over the p valid correlations."""
    n = basis_x.u.shape[0]
    value = jnp.nansum(correlations_from_bases(basis_x, basis_y)) / _num_correlations(
        basis_x, basis_y
    )
    return jnp.where(is_degenerate(basis_x, basis_y, n), jnp.nan, value)


def pwcca_from_bases(basis_x: PrincipalBasis, basis_y: PrincipalBasis) -> jax.Array:
    """Σ α_i ρ_i / Σ α_i with α_i = ||(Ỹ w'_i)ᵀ Ỹ||₁, the weights from y (notes 001 §2.2.2).

    Ỹw'_i = Q'v_i is the i-th canonical vector of y, v_i the i-th right singular vector of
    QᵀQ', and Q'ᵀỸ = Σ'V'ᵀ, so α_i = ||v_iᵀ Σ' V'ᵀ||₁ needs no n-sized product.
    """
    n = basis_x.u.shape[0]
    _, rho, v_t = jnp.linalg.svd(basis_x.u.T @ basis_y.u, full_matrices=False)
    alpha = jnp.sum(jnp.abs(v_t @ (basis_y.s[:, None] * basis_y.vt)), axis=1)
    valid = jnp.arange(rho.shape[0]) < _num_correlations(basis_x, basis_y)
    alpha = jnp.where(valid, alpha, 0.0)
    value = jnp.sum(alpha * jnp.clip(rho, 0.0, 1.0)) / jnp.sum(alpha)
    return jnp.where(is_degenerate(basis_x, basis_y, n), jnp.nan, value)


def r2_lr_from_bases(basis_x: PrincipalBasis, basis_y: PrincipalBasis) -> jax.Array:
    """R²_LR(X, Y) = ||QᵀỸ||²_F / ||Ỹ||²_F = Σ_ij (QᵀQ')_ij² σ'_j² / Σ_j σ'_j² (notes 001 §2.2.2).

    Degenerate (NaN) only when the regressor X reaches rank n - 1, which fits any Y exactly.
    """
    n = basis_x.u.shape[0]
    weights = basis_y.s**2
    explained = jnp.sum((basis_x.u.T @ basis_y.u) ** 2 * weights[None, :])
    return jnp.where(basis_x.num_kept >= n - 1, jnp.nan, explained / jnp.sum(weights))


# --- Public metrics ---------------------------------------------------------------------------

METRICS_FROM_BASES = {
    "cca_correlations": correlations_from_bases,
    "r2_cca": r2_cca_from_bases,
    "mean_cca_rho": mean_rho_from_bases,
    "svcca": mean_rho_from_bases,
    "pwcca": pwcca_from_bases,
    "r2_lr": r2_lr_from_bases,
}


@jit_kernel(static_argnames=("metric", "k"))
def _cca_metric(x, y, metric, k, variance):
    x, y = as_float(x), as_float(y)
    basis_x = principal_basis(centre_columns(x), k, variance)
    basis_y = principal_basis(centre_columns(y), k, variance)
    value = METRICS_FROM_BASES[metric](basis_x, basis_y)
    defined = usable(x) & usable(y)
    return jnp.where(defined, value, jnp.nan), basis_x.num_kept, basis_y.num_kept


def _checked_cca_metric(metric, x, y, k=None, variance=None):
    inputs.check_pair(metric, x, y, 2)
    value, kept_x, kept_y = _cca_metric(x, y, metric, k, variance)
    if inputs.is_concrete(kept_x, kept_y):
        n = np.shape(x)[0]
        sides = [("x", kept_x)] if metric == "r2_lr" else [("x", kept_x), ("y", kept_y)]
        for arg, kept in sides:
            if int(kept) >= n - 1:
                raise degenerate_error(metric, arg, int(kept), n, truncated=k or variance)
        forced = int(kept_x) + int(kept_y) - (n - 1)
        if metric != "r2_lr" and forced > 0:
            warnings.warn(
                f"{metric}: x and y keep {int(kept_x)} + {int(kept_y)} directions, more than "
                f"n - 1 = {n - 1}, so at least {forced} canonical correlations are 1 by "
                "construction; use more examples or svcca with a smaller k.",
                stacklevel=3,
            )
    return value


def degenerate_error(metric: str, arg: str, kept: int, n: int, truncated=False) -> UserError:
    what = "keeps" if truncated else "has rank"
    return UserError(
        f"{metric}: {arg} {what} {kept} directions, reaching n - 1 = {n - 1}, so every canonical "
        "correlation is 1 by construction (notes 001 §2.2.2); use more examples than that, "
        "pool conv maps (conv_rule='mean'), or svcca with a smaller k."
    )


def cca_correlations(x, y) -> jax.Array:
    """Canonical correlations of x: [n, p1] and y: [n, p2] -> ρ: [min(n, p1, p2)].

    ρ = singular values of QᵀQ', with Q, Q' orthonormal bases (from the SVD) of the centred
    X̃, Ỹ (notes 001 §2.2.2). Descending; the first p = min(rank X̃, rank Ỹ) entries are the
    correlations and the rest are NaN (there are only p of them; the fixed length keeps the
    function jit-able), so ``jnp.nanmean(ρ)`` is ρ̄. Rank tolerance and the degenerate case
    (rank reaching n - 1: UserError when eager, all-NaN under jit) are described in the module
    docstring. Invariant to invertible linear maps of either side.
    """
    return _checked_cca_metric("cca_correlations", x, y)


def r2_cca(x, y) -> jax.Array:
    """Mean squared canonical correlation R²_CCA = ||ρ||²/p (Yanai's GCD, Pillai's trace).

    x: [n, p1], y: [n, p2] -> []. Notes 001 §2.2.2. Symmetric; invariant to invertible linear
    maps of either side; NaN/UserError when degenerate (module docstring).
    """
    return _checked_cca_metric("r2_cca", x, y)


def mean_cca_rho(x, y) -> jax.Array:
    """Mean canonical correlation ρ̄ = Σρ_i / p = ||QᵀQ'||_*/p. x: [n, p1], y: [n, p2] -> [].

    Notes 001 §2.2.2. Symmetric; invariant to invertible linear maps of either side;
    NaN/UserError when degenerate (module docstring).
    """
    return _checked_cca_metric("mean_cca_rho", x, y)


def svcca(x, y, k: int | None = None, variance=0.99) -> jax.Array:
    """SVCCA (Raghu et al. 2017; notes 001 §2.2.2): ρ̄ of the top principal components.

    x: [n, p1], y: [n, p2] -> []. Each side keeps its top k principal components (SVD of the
    centred representation) when ``k`` is given (``variance`` is then ignored), else the
    smallest number whose squared singular values reach ``variance`` of the total; then CCA
    between the kept components, and the mean of the min(k_x, k_y) correlations. Under jit the
    data-dependent count is a mask, not a slice. Not invariant to invertible linear maps (the
    principal components change); symmetric. The notes recommend a fixed, equal k: with the
    variance rule a representation with a slowly decaying spectrum looks more similar to all
    others. NaN/UserError when a side keeps n - 1 components (module docstring).
    """
    if k is not None:
        if not isinstance(k, int) or k < 1:
            raise UserError(f"svcca: k must be a positive int or None, got {k!r}.")
        return _checked_cca_metric("svcca", x, y, k=k)
    if inputs.is_concrete(variance) and not 0.0 < float(variance) <= 1.0:
        raise UserError(f"svcca: variance must be in (0, 1], got {variance}.")
    return _checked_cca_metric("svcca", x, y, variance=variance)


def pwcca(x, y) -> jax.Array:
    """Projection-weighted CCA (Morcos et al. 2018; notes 001 §2.2.2). x: [n, p1], y: [n, p2].

    ``PWCCA(X, Y) = Σ_i α_i ρ_i / Σ_i α_i``, ``α_i = ||(Y w'_i)ᵀ Y||₁``: **the second argument
    y supplies the weights** (how much of y each canonical vector accounts for); ``pwcca(y, x)``
    weights by x. (Morcos et al.'s reference code silently weights by whichever side has fewer
    neurons.) Asymmetric; invariant to invertible maps of x but not of y (the L1 norm is not
    even rotation invariant). With tied correlations (e.g. several ρ = 1) the canonical vectors
    are not unique and neither is PWCCA. NaN/UserError when degenerate (module docstring).
    """
    return _checked_cca_metric("pwcca", x, y)


def r2_lr(x, y) -> jax.Array:
    """Fraction of the variance of centred Y explained by linear regression on centred X.

    ``R²_LR(X, Y) = 1 - Σ_i min_β ||Ỹ_:,i - X̃β||² / ||Ỹ||²_F = ||QᵀỸ||²_F / ||Ỹ||²_F`` with Q an
    orthonormal basis of X̃'s column space (notes 001 §2.2.2; Kornblith et al.'s "linear
    regression"). x: [n, p1] is the regressor, y: [n, p2] the target -> []. Asymmetric; invariant
    to invertible linear maps of x, and to orthogonal maps and isotropic scaling of y. Rank of
    X̃ reaching n - 1 fits every Y exactly: NaN/UserError (module docstring).
    """
    return _checked_cca_metric("r2_lr", x, y)
