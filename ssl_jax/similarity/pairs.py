"""Every layer of one network against every layer of another, in one call.

`all_pairs` never runs the metric L1·L2 times. Each metric is split into a per-layer part
(centring, Gram matrix, SVD basis, RSM ranks: L1 + L2 computations) and a cross-layer part
done in bulk on device: one large cross-product for CKA and RSA, a vmap over bases padded to a
common width for the CCA family, and a vmap over layers grouped by shape for any other metric.
"""

import inspect
import math
import warnings
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.errors import UserError, unknown_name
from ssl_jax.similarity import cca, cka, inputs, rsm
from ssl_jax.similarity.inputs import as_float, centre_columns, jit_kernel

# --- CKA: one cross-product -----------------------------------------------------------------


def _stack_flat(grams):
    return jnp.stack([g.reshape(-1) for g in grams])  # [L, n²]


def _cka_from_grams(grams_x, grams_y, debiased):
    """[L1, L2] CKA from per-layer Gram matrices via one [L1, n²] x [n², L2] product."""
    centre = cka.u_centre if debiased else cka.double_centre
    flat_x = _stack_flat([centre(g) for g in grams_x])
    flat_y = flat_x if grams_y is None else _stack_flat([centre(g) for g in grams_y])
    n = grams_x[0].shape[0]
    scale = 1.0 / (n * (n - 3)) if debiased else 1.0
    hsic_xy = flat_x @ flat_y.T * scale
    hsic_xx = jnp.sum(flat_x**2, axis=1) * scale
    hsic_yy = jnp.sum(flat_y**2, axis=1) * scale
    return cka.cka_from_hsic(hsic_xy, hsic_xx[:, None], hsic_yy[None, :])


def _block_sums(squares, widths_x, widths_y):
    """Sums a [P1, P2] matrix over the (layer a, layer b) blocks -> [L1, L2]."""
    segments_x = np.repeat(np.arange(len(widths_x)), widths_x)
    segments_y = np.repeat(np.arange(len(widths_y)), widths_y)
    rows = jax.ops.segment_sum(squares, segments_x, len(widths_x), indices_are_sorted=True)
    return jax.ops.segment_sum(rows.T, segments_y, len(widths_y), indices_are_sorted=True).T


def _feature_hsic_matrix(xs, ys, debiased):
    """[L1, L2] HSIC from ||X̃_aᵀỸ_b||², all blocks of one [P1, n] x [n, P2] product."""
    widths_x = [a.shape[1] for a in xs]
    widths_y = [b.shape[1] for b in ys]
    cross = jnp.concatenate(xs, axis=1).T @ jnp.concatenate(ys, axis=1)
    cross_sq = _block_sums(cross**2, widths_x, widths_y)
    if not debiased:
        return cross_sq
    d = jnp.stack([jnp.sum(a**2, axis=1) for a in xs])  # [L1, n]
    e = jnp.stack([jnp.sum(b**2, axis=1) for b in ys])  # [L2, n]
    n = xs[0].shape[0]
    sum_d, sum_e = jnp.sum(d, axis=1)[:, None], jnp.sum(e, axis=1)[None, :]
    return cka.unbiased_hsic_from_features(cross_sq, d @ e.T, sum_d, sum_e, n)


def _feature_hsic_self(layers, debiased):
    return jnp.stack([cka.linear_hsic_features(a, a, debiased) for a in layers])


@jit_kernel(static_argnames=("debiased",))
def _linear_cka_pairs(xs, ys, debiased):
    xs = [centre_columns(as_float(a)) for a in xs]
    ys = xs if ys is None else [centre_columns(as_float(b)) for b in ys]
    n = xs[0].shape[0]
    if cka.feature_space_is_cheaper(n, [a.shape[1] for a in xs], [b.shape[1] for b in ys]):
        return cka.cka_from_hsic(
            _feature_hsic_matrix(xs, ys, debiased),
            _feature_hsic_self(xs, debiased)[:, None],
            _feature_hsic_self(ys, debiased)[None, :],
        )
    grams_x = [cka.linear_gram(a) for a in xs]
    grams_y = None if ys is xs else [cka.linear_gram(b) for b in ys]
    return _cka_from_grams(grams_x, grams_y, debiased)


@jit_kernel(static_argnames=("debiased",))
def _rbf_cka_pairs(xs, ys, bandwidth, debiased):
    def grams(layers):
        pairs = [cka.rbf_gram(centre_columns(as_float(a)), bandwidth) for a in layers]
        return [gram for gram, _ in pairs], jnp.stack([median for _, median in pairs])

    grams_x, medians_x = grams(xs)
    grams_y, medians_y = (None, medians_x) if ys is None else grams(ys)
    return _cka_from_grams(grams_x, grams_y, debiased), medians_x, medians_y


def _linear_cka_all(xs, ys, same, debiased=False):
    return _linear_cka_pairs(xs, None if same else ys, bool(debiased))


def _rbf_cka_all(xs, ys, same, bandwidth=0.5, debiased=False):
    debiased = bool(debiased)
    if inputs.is_concrete(bandwidth) and not float(bandwidth) > 0:
        raise UserError(f"rbf_cka: bandwidth must be > 0, got {bandwidth}.")
    matrix, medians_x, medians_y = _rbf_cka_pairs(xs, None if same else ys, bandwidth, debiased)
    for name, medians in (("xs", medians_x), ("ys", medians_y)):
        if inputs.is_concrete(medians) and np.any(np.asarray(medians) == 0):
            layer = int(np.argmax(np.asarray(medians) == 0))
            raise UserError(
                f"all_pairs(rbf_cka): the median squared distance between the examples of "
                f"{name}[{layer}] is 0, so its RBF bandwidth would be 0; drop duplicate examples "
                "or use linear_cka."
            )
    return matrix


# --- RSA: one cross-product of rank vectors ---------------------------------------------------


@jit_kernel(static_argnames=("kernel", "center_columns"))
def _rank_vector(x, kernel, center_columns):
    rows = rsm.rsm_rows(as_float(x), center_columns)
    return rsm.rsm_rank_vector(rows, kernel), rsm.undefined_rows(rows, kernel)


def _rsa_all(xs, ys, same, kernel="pearson", center_columns=False):
    rsm.check_kernel(kernel)
    center_columns = bool(center_columns)
    ranks_x = _checked_rank_vectors(xs, kernel, center_columns, "xs")
    ranks_y = ranks_x if same else _checked_rank_vectors(ys, kernel, center_columns, "ys")
    return _matmul_t(ranks_x, ranks_y)


@jit_kernel
def _matmul_t(a, b):
    return a @ b.T


def _checked_rank_vectors(layers, kernel, center_columns, name):
    vectors = []
    for i, layer in enumerate(layers):
        vector, bad = _rank_vector(layer, kernel, center_columns)
        if inputs.is_concrete(bad) and int(bad):
            raise UserError(
                f"all_pairs(rsa): {int(bad)} examples of {name}[{i}] have an undefined {kernel} "
                "similarity " + rsm.undefined_kernel_message(kernel, center_columns)
            )
        vectors.append(vector)
    return jnp.stack(vectors)


# --- CCA family: per-layer bases, vmapped over pairs ------------------------------------------


@jit_kernel(static_argnames=("k",))
def _layer_basis(x, k, variance):
    return cca.principal_basis(centre_columns(as_float(x)), k, variance)


def _pad_basis(basis, width, num_features):
    """Zero-pads a basis to `width` directions (and vt to `num_features` columns)."""
    r = basis.s.shape[0]
    keep = min(r, width)
    vt = basis.vt[:keep]
    return cca.PrincipalBasis(
        u=jnp.pad(basis.u[:, :keep], ((0, 0), (0, width - keep))),
        s=jnp.pad(basis.s[:keep], (0, width - keep)),
        vt=jnp.pad(vt, ((0, width - keep), (0, num_features - vt.shape[1]))),
        rank=basis.rank,
        num_kept=basis.num_kept,
    )


def _stack_bases(bases, metric, width):
    """One pytree of [L, ...] arrays, every basis cut or zero-padded to `width` directions."""
    # Only PWCCA reads vt; the others get a 1-column stub instead of padding it to the widest p.
    num_features = max(b.vt.shape[1] for b in bases) if metric == "pwcca" else 1
    padded = [
        _pad_basis(b if metric == "pwcca" else b._replace(vt=b.vt[:, :1]), width, num_features)
        for b in bases
    ]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *padded)


def _width_buckets(bases, layers):
    """{width: [layer index]}: kept directions rounded up to the next 8·√2^j (capped at r).

    Padding every layer to the widest would make the SVD of a 30-direction pair as costly as
    the widest pair's (cost grows as width³); √2-spaced buckets bound the padding at 41% while
    keeping the number of compiled shapes small.
    """
    buckets = {}
    for i in layers:
        kept, width = int(bases[i].num_kept), 8
        while width < kept:
            width = math.ceil(width * math.sqrt(2))
        buckets.setdefault(min(width, bases[i].s.shape[0]), []).append(i)
    return buckets


@jit_kernel(static_argnames=("metric",))
def _pairs_from_bases(bases_x, bases_y, metric):
    compare = cca.METRICS_FROM_BASES[metric]

    def row(basis_x):
        return jax.vmap(lambda basis_y: compare(basis_x, basis_y))(bases_y)

    # lax.map over x-layers bounds memory at L2 cross matrices; vmap batches the y-layers.
    return jax.lax.map(row, bases_x)


def _degenerate_layers(bases, n):
    return [
        i
        for i, b in enumerate(bases)
        if inputs.is_concrete(b.num_kept) and int(b.num_kept) >= n - 1
    ]


def _cca_family_all(metric, xs, ys, same, k=None, variance=None):
    bases_x = [_layer_basis(a, k, variance) for a in xs]
    bases_y = bases_x if same else [_layer_basis(b, k, variance) for b in ys]
    n = xs[0].shape[0]
    skip_x = _degenerate_layers(bases_x, n)
    # R²_LR(x, y) is degenerate only through the regressor x.
    skip_y = [] if metric == "r2_lr" else _degenerate_layers(bases_y, n)
    if skip_x or skip_y:
        warnings.warn(
            f"all_pairs({metric}): layers xs{skip_x} / ys{skip_y} reach rank n - 1 = {n - 1}, so "
            "their canonical correlations are all 1 by construction; their entries are NaN. "
            "Use more examples, conv_rule='mean', or svcca with a smaller k.",
            stacklevel=3,
        )
    if not inputs.is_concrete(*[b.num_kept for b in (*bases_x, *bases_y)]):
        # Traced: no values to skip or bucket by; one padded batch, NaN marks degenerate pairs.
        width = max(b.s.shape[0] for b in (*bases_x, *bases_y))
        return _pairs_from_bases(
            _stack_bases(bases_x, metric, width), _stack_bases(bases_y, metric, width), metric
        )
    rows = [i for i in range(len(bases_x)) if i not in skip_x]
    cols = [j for j in range(len(bases_y)) if j not in skip_y]
    _warn_forced_correlations(metric, [bases_x[i] for i in rows], [bases_y[j] for j in cols], n)
    result = np.full((len(bases_x), len(bases_y)), np.nan, dtype=inputs.float_dtype())
    for width_x, rows_x in _width_buckets(bases_x, rows).items():
        for width_y, cols_y in _width_buckets(bases_y, cols).items():
            block = _pairs_from_bases(
                _stack_bases([bases_x[i] for i in rows_x], metric, width_x),
                _stack_bases([bases_y[j] for j in cols_y], metric, width_y),
                metric,
            )
            result[np.ix_(rows_x, cols_y)] = np.asarray(block)
    return jnp.asarray(result)


def _warn_forced_correlations(metric, bases_x, bases_y, n):
    if metric == "r2_lr":
        return
    kept_x = np.array([int(b.num_kept) for b in bases_x])
    kept_y = np.array([int(b.num_kept) for b in bases_y])
    inflated = int(np.sum(kept_x[:, None] + kept_y[None, :] > n - 1))
    if inflated:
        warnings.warn(
            f"all_pairs({metric}): in {inflated} of {kept_x.size * kept_y.size} layer pairs the "
            f"two layers keep more directions together than n - 1 = {n - 1}, so at least "
            "k_x + k_y - (n - 1) of their canonical correlations are 1 by construction; use more "
            "examples or svcca with a smaller k.",
            stacklevel=4,
        )


def _svcca_all(xs, ys, same, k=None, variance=0.99):
    if k is not None:
        if not isinstance(k, int) or k < 1:
            raise UserError(f"svcca: k must be a positive int or None, got {k!r}.")
        return _cca_family_all("svcca", xs, ys, same, k=k)
    return _cca_family_all("svcca", xs, ys, same, variance=variance)


# --- Any other metric: vmap over layers grouped by shape -------------------------------------


def _grouped_all(metric, xs, ys, same, **kwargs):
    def pair(x, y):
        return metric(x, y, **kwargs)

    result = [[None] * len(ys) for _ in xs]
    groups_x = _groups_by_shape(xs)
    groups_y = groups_x if same else _groups_by_shape(ys)
    for rows in groups_x.values():
        stacked_x = jnp.stack([xs[i] for i in rows])
        for cols in groups_y.values():
            stacked_y = jnp.stack([ys[j] for j in cols])
            block = jax.vmap(jax.vmap(pair, (None, 0)), (0, None))(stacked_x, stacked_y)
            for a, i in enumerate(rows):
                for b, j in enumerate(cols):
                    result[i][j] = block[a, b]
    return jnp.stack([jnp.stack(row) for row in result])


def _groups_by_shape(layers):
    groups = {}
    for i, layer in enumerate(layers):
        groups.setdefault(tuple(layer.shape), []).append(i)
    return groups


# --- Public entry point ----------------------------------------------------------------------


def _cca_named(metric):
    return lambda xs, ys, same: _cca_family_all(metric, xs, ys, same)


def _registry():
    from ssl_jax import similarity as sim

    return {
        "linear_cka": (sim.linear_cka, _linear_cka_all),
        "rbf_cka": (sim.rbf_cka, _rbf_cka_all),
        "r2_cca": (sim.r2_cca, _cca_named("r2_cca")),
        "mean_cca_rho": (sim.mean_cca_rho, _cca_named("mean_cca_rho")),
        "svcca": (sim.svcca, _svcca_all),
        "pwcca": (sim.pwcca, _cca_named("pwcca")),
        "r2_lr": (sim.r2_lr, _cca_named("r2_lr")),
        "rsa": (sim.rsa, _rsa_all),
    }


def _layer_list(layers, name):
    if isinstance(layers, Mapping):
        labels, arrays = list(layers), list(layers.values())
    else:
        arrays = list(layers)
        labels = [f"{name}[{i}]" for i in range(len(arrays))]
    if not arrays:
        raise UserError(f"all_pairs: {name} holds no layers; pass a list or dict of activations.")
    return labels, arrays


def _check_kwargs(name, public_fn, kwargs):
    try:
        inspect.signature(public_fn).bind(None, None, **kwargs)
    except TypeError:
        allowed = [p for p in inspect.signature(public_fn).parameters][2:]
        raise UserError(
            f"all_pairs: {name} takes no option(s) {sorted(set(kwargs) - set(allowed))}; "
            f"its options: {', '.join(allowed) or 'none'}."
        ) from None


def all_pairs(metric, xs, ys=None, *, conv_rule: str = "flatten", **metric_kwargs) -> jax.Array:
    """The [L1, L2] matrix ``S[a, b] = metric(xs[a], ys[b])`` of every layer pair, in one call.

    metric: one of this module's metrics, as the function (``sim.linear_cka``) or its name
    (``"linear_cka"``, ``"rbf_cka"``, ``"r2_cca"``, ``"mean_cca_rho"``, ``"svcca"``,
    ``"pwcca"``, ``"r2_lr"``, ``"rsa"``), or any other function ``f(x, y) -> []`` of two
    [n, p] matrices that jax can vmap (it is batched over layers grouped by shape).
    xs: the L1 layers of one network, a list of activations or a dict name -> activation
    (values in order), each [n, p] or a conv map [n, H, W, C] (any widths). ys: the L2 layers
    of the other network; None compares xs with itself (and reuses the per-layer work).
    conv_rule: how conv maps become [n, p] matrices, ``"flatten"`` or ``"mean"`` (`to_matrix`).
    metric_kwargs: the metric's options, e.g. ``debiased=True``, ``bandwidth=0.4``, ``k=20``.

    Same values as the pairwise calls (up to float rounding). Input is checked as for a single
    call, naming the layer. For the CCA family, layers whose rank reaches n - 1 (all canonical
    correlations 1 by construction) are not computed: their rows/columns are NaN and a warning
    names them.
    """
    registry = _registry()
    by_function = {public: name for name, (public, _) in registry.items()}
    if isinstance(metric, str):
        if metric not in registry:
            raise unknown_name("similarity metric", metric, registry)
        name = metric
    elif callable(metric):
        name = by_function.get(metric)
    else:
        raise UserError(f"all_pairs: metric must be a name or a function, got {metric!r}.")

    labels_x, xs = _layer_list(xs, "xs")
    same = ys is None
    labels_y, ys = (labels_x, xs) if same else _layer_list(ys, "ys")
    xs = [inputs.to_matrix(a, conv_rule) for a in xs]
    ys = xs if same else [inputs.to_matrix(b, conv_rule) for b in ys]
    shown_name = name or getattr(metric, "__name__", "metric")
    if same:
        _check_layers(shown_name, labels_x, xs, metric_kwargs)
    else:
        _check_layers(shown_name, labels_x + labels_y, xs + ys, metric_kwargs)

    if name is None:
        return _grouped_all(metric, xs, ys, same, **metric_kwargs)
    public_fn, batched = registry[name]
    _check_kwargs(name, public_fn, metric_kwargs)
    return batched(xs, ys, same, **metric_kwargs)


def _check_layers(metric, labels, layers, metric_kwargs):
    sizes = {layer.shape[0] for layer in layers}
    if len(sizes) != 1:
        counts = ", ".join(
            f"{label}: {layer.shape[0]}" for label, layer in zip(labels, layers, strict=True)
        )
        raise UserError(
            f"all_pairs({metric}): layers hold different numbers of examples ({counts}); every "
            "layer must hold the same examples in the same order."
        )
    n = sizes.pop()
    if metric_kwargs.get("debiased"):
        inputs.check_examples(metric, n, cka.UNBIASED_MIN_EXAMPLES, "the unbiased HSIC estimator")
    inputs.check_examples(metric, n, 3 if metric == "rsa" else 2)
    for label, layer in zip(labels, layers, strict=True):
        inputs.check_values(f"all_pairs({metric})", layer, label)
