"""Similarity metrics against independent NumPy/SciPy implementations written from the formulas
(notes 001 §2.2), and the invariances of notes 001 §2.2.3.

The references below share no code with ssl_jax.similarity and use different algorithms where
possible (pivoted QR instead of SVD, least squares, scipy's spearmanr, Song et al.'s HSIC
formula on n×n matrices). float64 cases run inside ``jax.enable_x64(True)`` (a context
manager, so other test files keep float32).
"""

import functools

import jax
import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats

from ssl_jax import similarity as sim

# Agreement with the float64 references (documented in docs/similarity.md). In float32 the
# CCA family loses digits in proportion to the conditioning of X̃ (about 1e4 for the
# near-duplicate columns, measured error 1.4e-4); everything else is within 1e-5.
FLOAT64_RTOL = 1e-6
FLOAT32_RTOL = 1e-5
FLOAT32_RTOL_ILL_CONDITIONED_CCA = 1e-3


# --- Independent references -------------------------------------------------------------------


def ref_centre(x):
    return x - x.mean(axis=0)


def ref_linear_cka(x, y):
    xc, yc = ref_centre(x), ref_centre(y)
    return np.linalg.norm(xc.T @ yc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


def ref_hsic_unbiased(gram_k, gram_l):
    """Song et al. (2012), eq. 5, literally."""
    n = gram_k.shape[0]
    k, m = gram_k.copy(), gram_l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(m, 0.0)
    one = np.ones(n)
    return (
        np.trace(k @ m)
        + (one @ k @ one) * (one @ m @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ k @ m @ one)
    ) / (n * (n - 3))


def ref_hsic_biased(gram_k, gram_l):
    n = gram_k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(gram_k @ h @ gram_l @ h)


def ref_cka_from_grams(gram_k, gram_l, debiased):
    hsic = ref_hsic_unbiased if debiased else ref_hsic_biased
    return hsic(gram_k, gram_l) / np.sqrt(hsic(gram_k, gram_k) * hsic(gram_l, gram_l))


def ref_rbf_gram(x, bandwidth):
    sq = scipy.spatial.distance.cdist(x, x, "sqeuclidean")
    return np.exp(-sq / (2 * bandwidth**2 * np.median(sq)))


def ref_orthonormal_basis(x):
    """Q of a pivoted QR of the centred x, keeping numpy's matrix_rank directions."""
    xc = ref_centre(x)
    rank = np.linalg.matrix_rank(xc)
    q, _, _ = scipy.linalg.qr(xc, mode="economic", pivoting=True)
    return q[:, :rank]


def ref_cca(x, y):
    """(ρ, canonical vectors of y) from the Björck–Golub construction (notes 001 §2.2.2)."""
    qx, qy = ref_orthonormal_basis(x), ref_orthonormal_basis(y)
    _, rho, vt = np.linalg.svd(qx.T @ qy, full_matrices=False)
    p = min(qx.shape[1], qy.shape[1])
    return rho[:p], (qy @ vt.T)[:, :p]


def ref_r2_cca(x, y):
    rho, _ = ref_cca(x, y)
    return np.sum(rho**2) / len(rho)


def ref_mean_rho(x, y):
    rho, _ = ref_cca(x, y)
    return np.mean(rho)


def ref_pwcca(x, y):
    rho, canonical_y = ref_cca(x, y)
    alpha = np.abs(canonical_y.T @ ref_centre(y)).sum(axis=1)
    return np.sum(alpha * rho) / np.sum(alpha)


def ref_r2_lr(x, y):
    xc, yc = ref_centre(x), ref_centre(y)
    beta, *_ = np.linalg.lstsq(xc, yc, rcond=None)
    return 1.0 - np.sum((yc - xc @ beta) ** 2) / np.sum(yc**2)


def ref_top_components(x, k, variance):
    u, s, _ = np.linalg.svd(ref_centre(x), full_matrices=False)
    if k is None:
        explained = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.searchsorted(explained, variance) + 1)
    return u[:, :k] * s[:k]


def ref_svcca(x, y, k=None, variance=0.99):
    return ref_mean_rho(ref_top_components(x, k, variance), ref_top_components(y, k, variance))


def ref_rsa(x, y):
    """Kriegeskorte's RSA: RSM_ij = Pearson correlation of example i's and j's raw features."""
    upper = np.triu_indices(x.shape[0], k=1)
    return scipy.stats.spearmanr(np.corrcoef(x)[upper], np.corrcoef(y)[upper]).statistic


def ref_rsa_centred_columns(x, y):
    return ref_rsa(ref_centre(x), ref_centre(y))


# --- Test cases -------------------------------------------------------------------------------


def related_pair(seed, n, p1, p2, shared=4, noise=0.7):
    """Two representations sharing `shared` latent directions, plus noise; p1 != p2 allowed."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, shared))
    x = z @ rng.normal(size=(shared, p1)) + noise * rng.normal(size=(n, p1)) + 3.0
    y = np.tanh(z @ rng.normal(size=(shared, p2))) + noise * rng.normal(size=(n, p2)) - 1.0
    return x, y


# The cases below share one shape (that of the invariance tests further down): each metric is
# compiled once per dtype for all of them, not once per case.
N, P1, P2 = 60, 7, 12


def near_duplicate_pair(seed):
    """x has a column equal to another up to 1e-4 relative noise; y is related to x."""
    x, y = related_pair(seed, N, P1, P2)
    rng = np.random.default_rng(seed + 100)
    x[:, 6] = x[:, 5] + 1e-4 * np.std(x[:, 5]) * rng.normal(size=N)
    return x, y


def rank_deficient_pair(seed):
    """rank(x̃) = 5 < p1 = 7: its last two columns mix two of the others."""
    x, y = related_pair(seed, N, P1, P2)
    x[:, 5:] = x[:, :2] @ np.random.default_rng(seed).normal(size=(2, 2))
    return x, y


CASES = {
    "p1_ne_p2": lambda: related_pair(0, N, P1, P2),
    "near_duplicate_columns": lambda: near_duplicate_pair(1),
    "rank_deficient": lambda: rank_deficient_pair(2),
}
# Wider than n: CKA and RSA are fine; every CCA-type metric is degenerate (tested separately).
WIDE_CASES = {"wide_layers": lambda: related_pair(3, 30, 45, 70)}

METRICS = {
    # name: (package function, reference, tolerance family, needs n > rank)
    "linear_cka": (sim.linear_cka, ref_linear_cka, "cka"),
    "linear_cka_debiased": (
        functools.partial(sim.linear_cka, debiased=True),
        lambda x, y: ref_cka_from_grams(x @ x.T, y @ y.T, debiased=True),
        "cka",
    ),
    "rbf_cka": (
        sim.rbf_cka,
        lambda x, y: ref_cka_from_grams(ref_rbf_gram(x, 0.5), ref_rbf_gram(y, 0.5), False),
        "cka",
    ),
    "rbf_cka_debiased": (
        functools.partial(sim.rbf_cka, bandwidth=0.4, debiased=True),
        lambda x, y: ref_cka_from_grams(ref_rbf_gram(x, 0.4), ref_rbf_gram(y, 0.4), True),
        "cka",
    ),
    "rsa": (sim.rsa, ref_rsa, "cka"),
    "rsa_center_columns": (
        functools.partial(sim.rsa, center_columns=True),
        ref_rsa_centred_columns,
        "cka",
    ),
    "r2_cca": (sim.r2_cca, ref_r2_cca, "cca"),
    "mean_cca_rho": (sim.mean_cca_rho, ref_mean_rho, "cca"),
    "pwcca": (sim.pwcca, ref_pwcca, "cca"),
    "r2_lr": (sim.r2_lr, ref_r2_lr, "cca"),
    "svcca": (sim.svcca, ref_svcca, "cca"),
    "svcca_k3": (functools.partial(sim.svcca, k=3), functools.partial(ref_svcca, k=3), "cca"),
}
CCA_FAMILY = {"r2_cca", "mean_cca_rho", "pwcca", "r2_lr", "svcca"}


def _cases_for(metric):
    cases = dict(CASES)
    if metric not in CCA_FAMILY:
        cases.update(WIDE_CASES)
    if metric == "pwcca":
        # PWCCA's weights need distinct correlations; a rank-deficient side ties them at 1.
        cases.pop("rank_deficient")
    return [(metric, case) for case in cases]


ALL_CASES = [pair for metric in METRICS for pair in _cases_for(metric)] + [("r2_lr", "wide_target")]


def _case(name):
    if name == "wide_target":  # R²_LR of a narrow regressor onto a target wider than n
        x, y = WIDE_CASES["wide_layers"]()
        return x[:, :8], y
    return {**CASES, **WIDE_CASES}[name]()


@pytest.mark.parametrize(("metric", "case"), ALL_CASES)
def test_metric_matches_numpy_reference_in_float64(metric, case):
    fn, ref, _ = METRICS[metric]
    x, y = _case(case)
    with jax.enable_x64(True):
        value = fn(x, y)
        assert value.dtype == np.float64
        np.testing.assert_allclose(float(value), ref(x, y), rtol=FLOAT64_RTOL, atol=1e-12)


@pytest.mark.parametrize(("metric", "case"), ALL_CASES)
def test_metric_matches_numpy_reference_in_float32(metric, case):
    fn, ref, family = METRICS[metric]
    x, y = _case(case)
    value = fn(x.astype(np.float32), y.astype(np.float32))
    assert value.dtype == np.float32
    ill_conditioned = family == "cca" and case == "near_duplicate_columns"
    rtol = FLOAT32_RTOL_ILL_CONDITIONED_CCA if ill_conditioned else FLOAT32_RTOL
    np.testing.assert_allclose(float(value), ref(x, y), rtol=rtol)


def test_cca_correlations_are_the_reference_correlations_then_nan():
    x, y = rank_deficient_pair(2)  # rank(x̃) = 5 < p1 = 7 < p2 = 12
    with jax.enable_x64(True):
        rho = np.asarray(sim.cca_correlations(x, y))
    expected, _ = ref_cca(x, y)
    assert rho.shape == (7,) and expected.shape == (5,)
    np.testing.assert_allclose(rho[:5], expected, rtol=FLOAT64_RTOL)
    assert np.isnan(rho[5:]).all()


REF_RSM = {
    "cosine": lambda x: (
        1.0 - scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(x, "cosine"))
    ),
    "linear": lambda x: x @ x.T,
    "euclidean": lambda x: -scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(x)),
}


@pytest.mark.parametrize("center_columns", [False, True])
@pytest.mark.parametrize("kernel", REF_RSM)
def test_rsa_with_other_kernels_matches_reference(kernel, center_columns):
    x, y = related_pair(0, 60, 7, 12)
    upper = np.triu_indices(60, k=1)
    prepare = ref_centre if center_columns else np.asarray
    rsm_x, rsm_y = (REF_RSM[kernel](prepare(a))[upper] for a in (x, y))
    with jax.enable_x64(True):
        value = float(sim.rsa(x, y, kernel=kernel, center_columns=center_columns))
    np.testing.assert_allclose(value, scipy.stats.spearmanr(rsm_x, rsm_y).statistic, rtol=1e-9)


@pytest.mark.parametrize("seed", [10, 11, 12, 13])
def test_rsa_default_is_kriegeskorte_rsa_of_raw_response_patterns(seed):
    # Features with their own offsets and scales, as units of a network have.
    rng = np.random.default_rng(seed)
    n, p1, p2 = 25 + 5 * seed % 20, 4 + seed % 5, 9
    x, y = related_pair(seed, n, p1, p2)
    x = x * rng.uniform(0.5, 3.0, size=p1) + rng.normal(scale=2.0, size=p1)
    y = y + rng.normal(size=p2)
    with jax.enable_x64(True):  # the definition, exactly
        np.testing.assert_allclose(float(sim.rsa(x, y)), ref_rsa(x, y), rtol=1e-9)
    # In float32, pairs of examples whose similarities differ by less than float32's rounding
    # can swap ranks: the Spearman correlation moves by ~1e-5 (seen on one CPU at seed 11).
    value = float(sim.rsa(x.astype(np.float32), y.astype(np.float32)))
    np.testing.assert_allclose(value, ref_rsa(x, y), rtol=1e-4)


def test_rsa_definitions_differ_and_the_default_is_the_fields():
    # Large per-feature offsets dominate the raw patterns: every example's pattern looks like the
    # offset vector, so the raw and the column-centred RSMs rank the pairs differently.
    rng = np.random.default_rng(7)
    x, y = related_pair(7, N, P1, P2)
    x = x + rng.normal(scale=4.0, size=P1)
    y = y + rng.normal(scale=4.0, size=P2)
    field, centred = ref_rsa(x, y), ref_rsa_centred_columns(x, y)
    assert abs(field - centred) > 0.05
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    np.testing.assert_allclose(float(sim.rsa(x32, y32)), field, rtol=1e-5)
    np.testing.assert_allclose(float(sim.rsa(x32, y32, center_columns=True)), centred, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(sim.all_pairs("rsa", [x32], [y32])), [[field]], rtol=1e-5)


def test_debiased_hsic_feature_space_equals_song_formula_on_grams():
    # Narrow layers take the feature-space route, wide ones the Gram route: both must agree.
    x, y = related_pair(4, 20, 3, 50)
    with jax.enable_x64(True):
        narrow = sim.linear_cka(x, y[:, :3], debiased=True)
        wide = sim.linear_cka(x, y, debiased=True)
    np.testing.assert_allclose(
        float(narrow), ref_cka_from_grams(x @ x.T, y[:, :3] @ y[:, :3].T, True), rtol=1e-9
    )
    np.testing.assert_allclose(float(wide), ref_cka_from_grams(x @ x.T, y @ y.T, True), rtol=1e-9)


def test_debiased_cka_can_be_negative_and_is_returned_unclipped():
    rng = np.random.default_rng(5)
    values = [
        float(sim.linear_cka(rng.normal(size=(12, 3)), rng.normal(size=(12, 3)), debiased=True))
        for _ in range(10)
    ]
    assert min(values) < 0.0
    assert all(-1.0 <= v <= 1.0 for v in values)


def test_matmuls_run_at_highest_precision():
    x, y = related_pair(0, 60, 7, 12)
    for fn in (sim.linear_cka, sim.r2_cca, sim.rsa):
        jaxpr = str(jax.make_jaxpr(fn)(x.astype(np.float32), y.astype(np.float32)))
        assert "dot_general" in jaxpr
        assert "precision=None" not in jaxpr and "DEFAULT" not in jaxpr
        assert "Precision.HIGHEST" in jaxpr


# --- Invariances (notes 001 §2.2.3), checked on several random seeds ----------------------------

SEEDS = [0, 1, 2]


def _random_orthogonal(rng, p):
    q, r = np.linalg.qr(rng.normal(size=(p, p)))
    return q * np.sign(np.diag(r))


def _random_invertible(rng, p):
    # Well conditioned (singular values 0.3..3) but far from orthogonal.
    s = np.geomspace(0.3, 3.0, p)
    return _random_orthogonal(rng, p) @ np.diag(s) @ _random_orthogonal(rng, p)


def _value(fn, x, y):
    return float(fn(x.astype(np.float32), y.astype(np.float32)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn", [sim.r2_cca, sim.mean_cca_rho], ids=["r2_cca", "mean_cca_rho"])
def test_cca_invariant_to_invertible_linear_maps_of_either_side(fn, seed):
    x, y = related_pair(seed, 60, 7, 12)
    rng = np.random.default_rng(seed)
    base = _value(fn, x, y)
    assert _value(fn, x @ _random_invertible(rng, 7), y) == pytest.approx(base, abs=2e-4)
    assert _value(fn, x, y @ _random_invertible(rng, 12)) == pytest.approx(base, abs=2e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_cka_invariant_to_orthogonal_maps_and_isotropic_scaling(seed):
    x, y = related_pair(seed, 60, 7, 12)
    rng = np.random.default_rng(seed)
    base = _value(sim.linear_cka, x, y)
    moved_x = 7.5 * x @ _random_orthogonal(rng, 7)
    moved_y = 0.01 * y @ _random_orthogonal(rng, 12)
    assert _value(sim.linear_cka, moved_x, moved_y) == pytest.approx(base, abs=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_cka_not_invariant_to_all_invertible_maps(seed):
    x, y = related_pair(seed, 60, 7, 12)
    rng = np.random.default_rng(seed)
    base = _value(sim.linear_cka, x, y)
    assert abs(_value(sim.linear_cka, x @ _random_invertible(rng, 7), y) - base) > 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_pwcca_not_invariant_to_invertible_maps_of_the_weighting_side(seed):
    x, y = related_pair(seed, 60, 7, 12)
    rng = np.random.default_rng(seed)
    base = _value(sim.pwcca, x, y)
    assert abs(_value(sim.pwcca, x, y @ _random_invertible(rng, 12)) - base) > 1e-3
    # The other side only changes the bases, not the weights.
    assert _value(sim.pwcca, x @ _random_invertible(rng, 7), y) == pytest.approx(base, abs=2e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_svcca_not_invariant_to_invertible_maps(seed):
    x, y = related_pair(seed, 60, 7, 12)
    rng = np.random.default_rng(seed)
    svcca3 = functools.partial(sim.svcca, k=3)
    base = _value(svcca3, x, y)
    assert abs(_value(svcca3, x, y @ _random_invertible(rng, 12)) - base) > 1e-3


@pytest.mark.parametrize(
    "fn",
    [sim.linear_cka, sim.rbf_cka, functools.partial(sim.linear_cka, debiased=True)],
    ids=["linear", "rbf", "debiased"],
)
def test_cka_of_a_representation_with_itself_is_one(fn):
    x, _ = related_pair(0, 60, 7, 12)
    assert _value(fn, x, x) == pytest.approx(1.0, abs=1e-6)


SYMMETRIC = {
    "linear_cka": sim.linear_cka,
    "linear_cka_debiased": functools.partial(sim.linear_cka, debiased=True),
    "rbf_cka": sim.rbf_cka,
    "r2_cca": sim.r2_cca,
    "mean_cca_rho": sim.mean_cca_rho,
    "svcca": sim.svcca,
    "rsa": sim.rsa,
}


@pytest.mark.parametrize("name", SYMMETRIC)
def test_symmetric_metrics_are_symmetric(name):
    x, y = related_pair(1, 60, 7, 12)
    fn = SYMMETRIC[name]
    assert _value(fn, x, y) == pytest.approx(_value(fn, y, x), abs=2e-5)


@pytest.mark.parametrize("fn", [sim.pwcca, sim.r2_lr], ids=["pwcca", "r2_lr"])
def test_asymmetric_metrics_depend_on_argument_order(fn):
    x, y = related_pair(1, 60, 7, 12)
    assert abs(_value(fn, x, y) - _value(fn, y, x)) > 1e-2


EVERY_METRIC = {name: fn for name, (fn, _, _) in METRICS.items()}
# Default RSA correlates each example's raw pattern, which moves when a feature is translated
# across the examples (tested below); every other metric centres the columns first.
TRANSLATION_INVARIANT = set(EVERY_METRIC) - {"rsa"}


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize("name", EVERY_METRIC)
def test_every_metric_invariant_to_permuting_neurons_and_translating(name, seed):
    x, y = related_pair(seed, 60, 7, 12)
    rng = np.random.default_rng(seed)
    fn = EVERY_METRIC[name]
    base = _value(fn, x, y)
    permuted = _value(fn, x[:, rng.permutation(7)], y[:, rng.permutation(12)])
    assert permuted == pytest.approx(base, abs=2e-5)
    if name in TRANSLATION_INVARIANT:
        translated = _value(fn, x + rng.normal(size=7) * 5.0, y - rng.normal(size=12) * 5.0)
        assert translated == pytest.approx(base, abs=2e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_rsa_invariant_to_affine_maps_of_each_example_not_to_translating_features(seed):
    x, y = related_pair(seed, 60, 7, 12)
    rng = np.random.default_rng(seed)
    base = _value(sim.rsa, x, y)
    # x_i -> a_i x_i + b_i (a_i > 0) leaves every Pearson correlation between examples as it is.
    scaled = rng.uniform(0.2, 5.0, size=(60, 1)) * x + rng.normal(size=(60, 1)) * 5.0
    assert _value(sim.rsa, scaled, y) == pytest.approx(base, abs=2e-5)
    shifted = x + rng.normal(size=7) * 5.0
    assert abs(_value(sim.rsa, shifted, y) - base) > 1e-2


@pytest.mark.parametrize(
    "fn",
    [sim.linear_cka, functools.partial(sim.svcca, k=3), sim.r2_cca, sim.pwcca, sim.rsa],
    ids=["linear_cka", "svcca", "r2_cca", "pwcca", "rsa"],
)
def test_metrics_are_vmappable_and_jittable(fn):
    pairs = [related_pair(seed, 60, 7, 12) for seed in range(3)]
    xs = np.stack([x for x, _ in pairs]).astype(np.float32)
    ys = np.stack([y for _, y in pairs]).astype(np.float32)
    batched = jax.jit(jax.vmap(fn))(xs, ys)
    np.testing.assert_allclose(
        batched, [_value(fn, x, y) for x, y in zip(xs, ys, strict=True)], rtol=1e-5
    )
