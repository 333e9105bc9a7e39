"""all_pairs (every layer pair in one call) and MinibatchCKA (CKA accumulated over batches)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import similarity as sim


def _network_layers(seed, n=40):
    """Layers of two toy 'networks' sharing a latent: dense layers and small NHWC conv maps."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 5))

    def layer(*shape):
        w = rng.normal(size=(5, int(np.prod(shape))))
        return np.tanh(z @ w + 0.5 * rng.normal(size=(n, w.shape[1]))).reshape(n, *shape)

    # Two layers of xs share a shape, as layers of a network often do, and both layers of ys
    # flatten to 12 features: the loop of pairwise calls compiles one program per distinct
    # shape pair, 2 of them with conv_rule="flatten" (4 with "mean").
    xs = [layer(6), layer(3, 3, 2), layer(6)]
    ys = [layer(12), layer(2, 2, 3)]
    return [a.astype(np.float32) for a in xs], [b.astype(np.float32) for b in ys]


PAIR_METRICS = {
    "linear_cka": (sim.linear_cka, {}),
    "linear_cka_debiased": (sim.linear_cka, {"debiased": True}),
    "rbf_cka": (sim.rbf_cka, {"bandwidth": 0.4}),
    "rbf_cka_debiased": (sim.rbf_cka, {"debiased": True}),
    "r2_cca": (sim.r2_cca, {}),
    "mean_cca_rho": (sim.mean_cca_rho, {}),
    "svcca": (sim.svcca, {}),
    "svcca_k": (sim.svcca, {"k": 3}),
    "pwcca": (sim.pwcca, {}),
    "r2_lr": (sim.r2_lr, {}),
    "rsa": (sim.rsa, {}),
    "rsa_center_columns": (sim.rsa, {"center_columns": True}),
}


def _loop(fn, xs, ys, conv_rule, **kwargs):
    return np.array(
        [
            [
                float(fn(sim.to_matrix(a, conv_rule), sim.to_matrix(b, conv_rule), **kwargs))
                for b in ys
            ]
            for a in xs
        ]
    )


@pytest.mark.parametrize(
    ("name", "conv_rule"),
    [(name, "flatten") for name in PAIR_METRICS] + [("linear_cka", "mean"), ("pwcca", "mean")],
)
def test_all_pairs_equals_a_loop_of_pairwise_calls(name, conv_rule):
    fn, kwargs = PAIR_METRICS[name]
    xs, ys = _network_layers(0)
    matrix = sim.all_pairs(fn, xs, ys, conv_rule=conv_rule, **kwargs)
    assert matrix.shape == (3, 2)
    np.testing.assert_allclose(matrix, _loop(fn, xs, ys, conv_rule, **kwargs), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("debiased", [False, True])
def test_all_pairs_linear_cka_through_gram_matrices_for_wide_layers(debiased):
    # n = 12 examples with 30-60 features: the n×n route is the cheaper one and is taken. Two
    # widths a side: 4 shape pairs, so 4 compilations of the pairwise metric.
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(12, p)).astype(np.float32) for p in (30, 45)]
    ys = [rng.normal(size=(12, p)).astype(np.float32) for p in (60, 45, 60)]
    expected = _loop(sim.linear_cka, xs, ys, "flatten", debiased=debiased)
    got = sim.all_pairs("linear_cka", xs, ys, debiased=debiased)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_all_pairs_of_a_network_with_itself_reuses_layers_and_has_unit_diagonal():
    xs, _ = _network_layers(2)
    with_none = sim.all_pairs("linear_cka", xs)
    explicit = sim.all_pairs("linear_cka", xs, list(xs))
    np.testing.assert_allclose(with_none, explicit, rtol=1e-5)
    np.testing.assert_allclose(np.diag(with_none), 1.0, atol=1e-5)
    np.testing.assert_allclose(with_none, with_none.T, rtol=1e-5)


def test_all_pairs_accepts_named_layers_and_keeps_their_order():
    xs, ys = _network_layers(3)
    named = {"conv": xs[1], "dense": xs[0]}
    np.testing.assert_allclose(
        sim.all_pairs("r2_cca", named, ys), sim.all_pairs("r2_cca", [xs[1], xs[0]], ys), rtol=1e-5
    )


def test_all_pairs_marks_degenerate_cca_layers_nan_and_warns():
    rng = np.random.default_rng(4)
    narrow, wide = rng.normal(size=(20, 3)), rng.normal(size=(20, 30))  # rank(wide) = n - 1
    with pytest.warns(UserWarning, match=r"layers xs\[1\] / ys\[1\] reach rank n - 1 = 19"):
        matrix = np.asarray(sim.all_pairs("mean_cca_rho", [narrow, wide], [narrow, wide]))
    assert matrix[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert np.isnan(matrix[1]).all() and np.isnan(matrix[:, 1]).all()
    # R²_LR is degenerate only through its regressor (the row layer).
    with pytest.warns(UserWarning, match=r"xs\[1\] / ys\[\]"):
        lr = np.asarray(sim.all_pairs("r2_lr", [narrow, wide], [narrow, wide]))
    assert np.isnan(lr[1]).all() and np.isfinite(lr[0]).all()


def test_all_pairs_warns_when_a_pair_keeps_more_directions_than_n_minus_one():
    rng = np.random.default_rng(4)
    layers = [rng.normal(size=(20, 12)), rng.normal(size=(20, 3))]  # 12 + 12 > 19 only
    with pytest.warns(UserWarning, match="in 1 of 4 layer pairs"):
        matrix = np.asarray(sim.all_pairs("r2_cca", layers))
    assert np.isfinite(matrix).all()


def test_all_pairs_batches_any_other_metric_by_vmapping_over_layers():
    def cosine_of_means(x, y):
        mx, my = x.mean(axis=1), y.mean(axis=1)
        return mx @ my / jnp.sqrt((mx @ mx) * (my @ my))

    xs, ys = _network_layers(5)
    xs = [sim.to_matrix(a) for a in xs]
    ys = [sim.to_matrix(b) for b in ys]
    np.testing.assert_allclose(
        sim.all_pairs(cosine_of_means, xs, ys), _loop(cosine_of_means, xs, ys, "flatten"), rtol=1e-5
    )


@pytest.mark.parametrize("name", ["linear_cka", "r2_cca"])
def test_all_pairs_runs_under_jit_with_the_same_values(name):
    xs, ys = _network_layers(6)
    xs = [sim.to_matrix(a) for a in xs]
    ys = [sim.to_matrix(b) for b in ys]
    jitted = jax.jit(functools.partial(sim.all_pairs, name))(xs, ys)
    np.testing.assert_allclose(jitted, sim.all_pairs(name, xs, ys), rtol=1e-5)


# --- MinibatchCKA -----------------------------------------------------------------------------


def _correlated_layers(seed, n):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    # Three layers of two widths: the pairwise references compile one program per shape pair.
    widths = (5, 12, 5)
    return [
        (np.tanh(z @ rng.normal(size=(6, p))) + rng.normal(size=(n, p))).astype(np.float32)
        for p in widths
    ]


def _accumulate(acc, xs, ys, batch_size, order):
    state = acc.init(len(xs), len(ys))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        state = acc.update(state, [a[rows] for a in xs], [b[rows] for b in ys])
    return acc.result(state)


def test_minibatch_cka_with_one_batch_is_debiased_linear_cka():
    xs, ys = _correlated_layers(0, 64), _correlated_layers(1, 64)
    acc = sim.MinibatchCKA()
    result = acc.result(acc.update(acc.init(3, 3), xs, ys))
    expected = _loop(sim.linear_cka, xs, ys, "flatten", debiased=True)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-6)


def test_minibatch_cka_does_not_depend_on_the_batching_beyond_noise():
    n = 1200
    xs = _correlated_layers(2, n)
    ys = [a + np.random.default_rng(3).normal(size=a.shape).astype(np.float32) for a in xs]
    acc = sim.MinibatchCKA()
    full = _loop(sim.linear_cka, xs, ys, "flatten", debiased=True)
    shuffled = np.random.default_rng(4).permutation(n)
    for batch_size, order in [(100, np.arange(n)), (300, np.arange(n)), (100, shuffled)]:
        np.testing.assert_allclose(_accumulate(acc, xs, ys, batch_size, order), full, atol=0.03)
    # Nor is it the biased estimate of the batches: that one drifts with the batch size.
    biased_small = np.mean(
        [float(sim.linear_cka(xs[0][i : i + 20], ys[1][i : i + 20])) for i in range(0, n, 20)]
    )
    assert biased_small - full[0, 1] > 0.05


def test_minibatch_cka_update_is_jittable_and_handles_conv_maps():
    layers, _ = _network_layers(7)
    acc = sim.MinibatchCKA(conv_rule="mean")
    state = acc.init(3, 3)
    eager = acc.update(state, layers)
    jitted = jax.jit(acc.update)(state, layers, layers)
    np.testing.assert_allclose(acc.result(jitted), acc.result(eager), rtol=1e-5)
    np.testing.assert_allclose(np.diag(acc.result(eager)), 1.0, atol=1e-5)
    assert int(eager.num_batches) == 1
