"""Centred kernel alignment (notes 001 §2.2.1): linear, RBF, debiased, and over minibatches.

CKA compares the centred Gram (kernel) matrices of two representations of the same n examples
by their cosine similarity, ``<HKH, HLH>_F / (||HKH||_F ||HLH||_F)`` (notes 001 §2.2.1,
Kornblith et al. 2019). Its numerator is HSIC up to a constant. The *debiased* variants replace
the biased HSIC by Song et al.'s (2012) unbiased estimator ``HSIC_1``, equivalently the inner
product of U-centred Gram matrices (Székely & Rizzo 2014).
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.errors import UserError
from ssl_jax.similarity import inputs
from ssl_jax.similarity.inputs import as_float, centre_columns, jit_kernel, usable

UNBIASED_MIN_EXAMPLES = 4
_UNBIASED_WHY = "the unbiased HSIC estimator divides by n(n-3)"


# --- Gram matrices and their centring ----------------------------------------------------


def linear_gram(x_centred: jax.Array) -> jax.Array:
    """K = X̃X̃ᵀ. x_centred: [n, p] -> [n, n]."""
    return x_centred @ x_centred.T


def squared_distances(x: jax.Array) -> jax.Array:
    """||x_i - x_j||² for all example pairs via ||x_i||² + ||x_j||² - 2x_iᵀx_j. x: [n, p] -> [n, n].

    The expansion uses one matmul but cannot give an exact 0: values within its rounding error
    (8·sqrt(p)·eps·(||x_i||² + ||x_j||²)) are set to 0, so identical examples are at distance 0
    (and the diagonal is exactly 0).
    """
    sq_norms = jnp.sum(x**2, axis=1)
    scale = sq_norms[:, None] + sq_norms[None, :]
    sq_dist = scale - 2.0 * x @ x.T
    rounding = 8.0 * np.sqrt(x.shape[1]) * jnp.finfo(x.dtype).eps * scale
    return jnp.where(sq_dist <= rounding, 0.0, sq_dist)


def rbf_gram(x_centred: jax.Array, bandwidth) -> tuple[jax.Array, jax.Array]:
    """Gaussian kernel ``K_ij = exp(-||x_i - x_j||² / (2σ²))`` with σ² = bandwidth² · median.

    The median is taken over **all n² entries** of the squared-distance matrix, the n zeros of
    its diagonal included and every off-diagonal pair counted twice (the convention of Kornblith
    et al.'s reference code; with ties the two middle values are averaged). Returns (K: [n, n],
    median: []); K is NaN when the median is 0 (more than half of the entries are 0).
    """
    sq_dist = squared_distances(x_centred)
    median = jnp.median(sq_dist)
    safe_median = jnp.where(median > 0, median, 1.0)
    gram = jnp.exp(-sq_dist / (2.0 * bandwidth**2 * safe_median))
    return jnp.where(median > 0, gram, jnp.nan), median


def double_centre(gram: jax.Array) -> jax.Array:
    """HKH with H = I - 11ᵀ/n: removes the row and column means. gram: [n, n]."""
    return (
        gram
        - jnp.mean(gram, axis=0, keepdims=True)
        - jnp.mean(gram, axis=1, keepdims=True)
        + jnp.mean(gram)
    )


def u_centre(gram: jax.Array) -> jax.Array:
    """U-centring (Székely & Rizzo 2014): with K̃ = K with its diagonal set to 0,

    ``U_ij = K̃_ij - K̃_i·/(n-2) - K̃_·j/(n-2) + K̃_··/((n-1)(n-2))`` for i ≠ j and U_ii = 0.
    Then ``<U(K), U(L)>_F / (n(n-3)) = HSIC_1(K, L)``, Song et al.'s unbiased estimator.
    """
    n = gram.shape[0]
    off_diagonal = ~jnp.eye(n, dtype=bool)
    gram = jnp.where(off_diagonal, gram, 0.0)
    row_sums = jnp.sum(gram, axis=1)
    total = jnp.sum(row_sums)
    centred = (
        gram
        - row_sums[:, None] / (n - 2)
        - row_sums[None, :] / (n - 2)
        + total / ((n - 1) * (n - 2))
    )
    return jnp.where(off_diagonal, centred, 0.0)


# --- HSIC and CKA from sufficient statistics (shared with all_pairs) -----------------------


def unbiased_hsic_from_features(cross_sq, d_dot_e, sum_d, sum_e, n):
    """Song et al.'s HSIC_1 for linear kernels of centred X̃, Ỹ without forming n×n matrices.

    With K = X̃X̃ᵀ, L = ỸỸᵀ, K̃, L̃ their zero-diagonal versions, d = diag K, e = diag L:
    ``HSIC_1 = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n-1)(n-2)) - 2/(n-2)·1ᵀK̃L̃1] / (n(n-3))``, and because
    the columns are centred, ``tr(K̃L̃) = ||X̃ᵀỸ||² - dᵀe``, ``1ᵀK̃1 = -Σd`` and
    ``1ᵀK̃L̃1 = dᵀe``. Arguments broadcast (scalars for one pair, [L1, L2] for all pairs):
    cross_sq = ||X̃ᵀỸ||²_F, d_dot_e = dᵀe, sum_d = Σd, sum_e = Σe.
    """
    return (cross_sq - n / (n - 2) * d_dot_e + sum_d * sum_e / ((n - 1) * (n - 2))) / (n * (n - 3))


def cka_from_hsic(hsic_xy, hsic_xx, hsic_yy):
    """HSIC(X, Y) / sqrt(HSIC(X, X) HSIC(Y, Y)); NaN where the denominator is not positive."""
    denominator = hsic_xx * hsic_yy
    positive = denominator > 0
    return jnp.where(positive, hsic_xy / jnp.sqrt(jnp.where(positive, denominator, 1.0)), jnp.nan)


def feature_space_is_cheaper(n: int, widths_x: Sequence[int], widths_y: Sequence[int]) -> bool:
    """Whether ||X̃ᵀỸ||² (n·p1·p2 per pair) beats n×n Gram matrices (n²·p per layer).

    Both give the same number; the choice is static (shapes only), so it never costs a branch.
    """
    feature = n * (sum(widths_x) * sum(widths_y) + sum(p * p for p in (*widths_x, *widths_y)))
    gram = n * n * (sum(widths_x) + sum(widths_y) + len(widths_x) * len(widths_y))
    return feature <= gram


def linear_hsic_features(x_centred, y_centred, debiased):
    """HSIC of linear kernels from features: ||X̃ᵀỸ||²_F, or HSIC_1 when debiased. [] each."""
    cross_sq = jnp.sum((x_centred.T @ y_centred) ** 2)
    if not debiased:
        return cross_sq
    d = jnp.sum(x_centred**2, axis=1)
    e = jnp.sum(y_centred**2, axis=1)
    n = x_centred.shape[0]
    return unbiased_hsic_from_features(cross_sq, d @ e, jnp.sum(d), jnp.sum(e), n)


def _hsic_grams(gram_x, gram_y, debiased):
    if debiased:
        n = gram_x.shape[0]
        return jnp.sum(u_centre(gram_x) * u_centre(gram_y)) / (n * (n - 3))
    return jnp.sum(double_centre(gram_x) * double_centre(gram_y))


def _cka_grams(gram_x, gram_y, debiased):
    return cka_from_hsic(
        _hsic_grams(gram_x, gram_y, debiased),
        _hsic_grams(gram_x, gram_x, debiased),
        _hsic_grams(gram_y, gram_y, debiased),
    )


# --- Public metrics -------------------------------------------------------------------------


@jit_kernel(static_argnames=("debiased",))
def _linear_cka(x, y, debiased):
    x, y = as_float(x), as_float(y)
    defined = usable(x) & usable(y)
    x_centred, y_centred = centre_columns(x), centre_columns(y)
    n = x.shape[0]
    if feature_space_is_cheaper(n, [x.shape[1]], [y.shape[1]]):
        value = cka_from_hsic(
            linear_hsic_features(x_centred, y_centred, debiased),
            linear_hsic_features(x_centred, x_centred, debiased),
            linear_hsic_features(y_centred, y_centred, debiased),
        )
    else:
        value = _cka_grams(linear_gram(x_centred), linear_gram(y_centred), debiased)
    return jnp.where(defined, value, jnp.nan)


def linear_cka(x, y, debiased: bool = False) -> jax.Array:
    """Linear CKA (notes 001 §2.2.1; Kornblith et al. 2019, eq. 6). x: [n, p1], y: [n, p2] -> [].

    ``CKA = ||X̃ᵀỸ||²_F / (||X̃ᵀX̃||_F ||ỸᵀỸ||_F)`` with X̃, Ỹ column-centred. Computed in
    feature space (p×p products, never an n×n matrix) whenever that is the cheaper route, i.e.
    whenever the layers are narrower than about n; otherwise through the n×n Gram matrices.
    Symmetric; in [0, 1]; invariant to orthogonal maps and isotropic scaling of either side, not
    to general invertible maps (notes 001 §2.2.3).

    ``debiased=True`` replaces each HSIC by Song et al.'s unbiased estimator HSIC_1 (see
    `unbiased_hsic_from_features`); it needs n >= 4. Debiased CKA lies in [-1, 1] and **can be
    negative** when the representations are (nearly) unrelated: the estimate is returned
    unclipped, because clipping at 0 would bias averages over many estimates upwards.

    NaN (under jit/vmap) or UserError (eager call) for non-finite input or a representation
    that is the same for every example.
    """
    minimum, why = (UNBIASED_MIN_EXAMPLES, _UNBIASED_WHY) if debiased else (2, "")
    inputs.check_pair("linear_cka", x, y, minimum, why)
    return _linear_cka(x, y, bool(debiased))


@jit_kernel(static_argnames=("debiased",))
def _rbf_cka(x, y, bandwidth, debiased):
    x, y = as_float(x), as_float(y)
    defined = usable(x) & usable(y)
    gram_x, median_x = rbf_gram(centre_columns(x), bandwidth)
    gram_y, median_y = rbf_gram(centre_columns(y), bandwidth)
    value = _cka_grams(gram_x, gram_y, debiased)
    return jnp.where(defined, value, jnp.nan), median_x, median_y


def rbf_cka(x, y, bandwidth=0.5, debiased: bool = False) -> jax.Array:
    """CKA with Gaussian kernels (notes 001 §2.2.1; Kornblith et al. 2019 §3). x: [n, p1],
    y: [n, p2] -> [].

    ``K_ij = exp(-||x_i - x_j||² / (2σ²))`` with ``σ² = bandwidth² · median`` of the squared
    distances between examples of that representation, the median taken over all n² entries of
    the distance matrix, diagonal zeros included (see `rbf_gram`). ``bandwidth=0.4`` is
    Kornblith et al.'s "CKA RBF 0.4". CKA is the cosine of the centred Gram matrices
    (`debiased=True`: of the U-centred ones; needs n >= 4, can be negative, see `linear_cka`).
    Forms n×n matrices, so memory grows as n².

    A zero median (more than half of the example pairs at distance 0) would make σ = 0: an
    eager call raises UserError, under jit the result is NaN.
    """
    minimum, why = (UNBIASED_MIN_EXAMPLES, _UNBIASED_WHY) if debiased else (2, "")
    inputs.check_pair("rbf_cka", x, y, minimum, why)
    if inputs.is_concrete(bandwidth) and not float(bandwidth) > 0:
        raise UserError(f"rbf_cka: bandwidth must be > 0, got {bandwidth}.")
    value, median_x, median_y = _rbf_cka(x, y, bandwidth, bool(debiased))
    if inputs.is_concrete(median_x, median_y):
        for arg, median in (("x", median_x), ("y", median_y)):
            if float(median) == 0.0:
                raise UserError(
                    f"rbf_cka: the median squared distance between the examples of {arg} is 0 "
                    "(most of them are identical), so the RBF bandwidth would be 0; drop "
                    "duplicate examples or use linear_cka."
                )
    return value


# --- Minibatch CKA ----------------------------------------------------------------------------


class MinibatchCKAState(NamedTuple):
    """Running sums of per-batch unbiased HSIC_1 (a plain pytree, safe to print or save)."""

    hsic_xy: jax.Array  # [L1, L2] Σ_batches HSIC_1(K_a, L_b)
    hsic_xx: jax.Array  # [L1] Σ_batches HSIC_1(K_a, K_a)
    hsic_yy: jax.Array  # [L2] Σ_batches HSIC_1(L_b, L_b)
    num_batches: jax.Array  # [] int32


@jit_kernel
def _batch_hsic(xs, ys):
    def u_centred_grams(layers):
        return jnp.stack([u_centre(linear_gram(centre_columns(as_float(a)))) for a in layers])

    grams_x = u_centred_grams(xs)  # [L1, b, b]
    grams_y = grams_x if ys is None else u_centred_grams(ys)  # [L2, b, b]
    b = grams_x.shape[1]
    scale = 1.0 / (b * (b - 3))
    # One [L1, b²] x [b², L2] product gives every cross-layer HSIC of the batch.
    flat_x = grams_x.reshape(grams_x.shape[0], -1)
    flat_y = grams_y.reshape(grams_y.shape[0], -1)
    return (
        flat_x @ flat_y.T * scale,
        jnp.sum(flat_x**2, axis=1) * scale,
        jnp.sum(flat_y**2, axis=1) * scale,
    )


def _layers(layers) -> list:
    return list(layers.values()) if isinstance(layers, Mapping) else list(layers)


@dataclasses.dataclass(frozen=True)
class MinibatchCKA:
    """Linear CKA of many layer pairs accumulated over minibatches (Nguyen et al. 2021).

    ``CKA_minibatch(a, b) = Σ_k HSIC_1(K_a^k, L_b^k) / sqrt(Σ_k HSIC_1(K_a^k, K_a^k) ·
    Σ_k HSIC_1(L_b^k, L_b^k))`` over minibatches k, with HSIC_1 the unbiased estimator (so
    each batch term is unbiased for the same population HSIC and the value does not depend on
    the batching beyond estimator noise; every batch counts equally). Memory is O(L·b²), so n
    can exceed memory. One batch holding all n examples gives exactly
    ``linear_cka(x, y, debiased=True)``.

    Pure accumulator, optax-style::

        acc = MinibatchCKA(conv_rule="flatten")
        state = acc.init(num_x_layers=12, num_y_layers=12)
        for xs, ys in batches:  # xs: L1 arrays [b, ...], ys: L2 arrays [b, ...], b >= 4
            state = acc.update(state, xs, ys)
        cka = acc.result(state)  # [L1, L2]

    ``xs``/``ys`` are sequences of activations, or mappings name -> activation (values used in
    order); conv maps become matrices by ``conv_rule`` (`to_matrix`). Eager calls check their
    input like the other metrics; `update` is also jit-able.
    """

    conv_rule: str = "flatten"

    def init(self, num_x_layers: int, num_y_layers: int) -> MinibatchCKAState:
        dtype = inputs.float_dtype()
        return MinibatchCKAState(
            hsic_xy=jnp.zeros((num_x_layers, num_y_layers), dtype),
            hsic_xx=jnp.zeros((num_x_layers,), dtype),
            hsic_yy=jnp.zeros((num_y_layers,), dtype),
            num_batches=jnp.zeros((), jnp.int32),
        )

    def update(self, state: MinibatchCKAState, xs_batch, ys_batch=None) -> MinibatchCKAState:
        """Adds one minibatch; ys_batch=None compares the xs layers with themselves."""
        xs = [inputs.to_matrix(a, self.conv_rule) for a in _layers(xs_batch)]
        ys = (
            xs
            if ys_batch is None
            else [inputs.to_matrix(a, self.conv_rule) for a in _layers(ys_batch)]
        )
        num_x, num_y = state.hsic_xy.shape
        if (len(xs), len(ys)) != (num_x, num_y):
            raise UserError(
                f"MinibatchCKA.update: got {len(xs)} x-layers and {len(ys)} y-layers but the "
                f"state was made for {num_x} and {num_y}; call init with the right counts."
            )
        sizes = {a.shape[0] for a in (*xs, *ys)}
        if len(sizes) != 1:
            raise UserError(
                f"MinibatchCKA.update: layers hold different numbers of examples {sorted(sizes)};"
                " every layer of a batch must hold the same examples."
            )
        inputs.check_examples(
            "MinibatchCKA.update", sizes.pop(), UNBIASED_MIN_EXAMPLES, _UNBIASED_WHY
        )
        for name, layers in (("xs", xs), ("ys", ys)):
            for i, a in enumerate(layers):
                inputs.check_values("MinibatchCKA.update", a, f"{name}[{i}]")
        hsic_xy, hsic_xx, hsic_yy = _batch_hsic(xs, None if ys is xs else ys)
        return MinibatchCKAState(
            hsic_xy=state.hsic_xy + hsic_xy,
            hsic_xx=state.hsic_xx + hsic_xx,
            hsic_yy=state.hsic_yy + hsic_yy,
            num_batches=state.num_batches + 1,
        )

    def result(self, state: MinibatchCKAState) -> jax.Array:
        """[L1, L2] debiased CKA; NaN before any update or for a layer constant in every batch."""
        return cka_from_hsic(state.hsic_xy, state.hsic_xx[:, None], state.hsic_yy[None, :])
