"""Bad input to the similarity metrics: one-line UserErrors when eager, NaN under jit."""

import functools

import jax
import numpy as np
import pytest

from ssl_jax import similarity as sim
from ssl_jax.errors import UserError

METRICS = {
    "linear_cka": sim.linear_cka,
    "linear_cka_debiased": functools.partial(sim.linear_cka, debiased=True),
    "rbf_cka": sim.rbf_cka,
    "r2_cca": sim.r2_cca,
    "mean_cca_rho": sim.mean_cca_rho,
    "cca_correlations": sim.cca_correlations,
    "svcca": sim.svcca,
    "pwcca": sim.pwcca,
    "r2_lr": sim.r2_lr,
    "rsa": sim.rsa,
}


def _pair(n=30, p1=4, p2=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, p1)).astype(np.float32), rng.normal(size=(n, p2)).astype(np.float32)


def _raises_one_line(fn, *args, match):
    with pytest.raises(UserError, match=match) as info:
        fn(*args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", METRICS)
def test_different_numbers_of_examples_is_a_user_error(name):
    x, y = _pair()
    _raises_one_line(METRICS[name], x, y[:-1], match="30 examples .* y has 29")


@pytest.mark.parametrize("name", METRICS)
def test_one_dimensional_input_is_a_user_error(name):
    x, y = _pair()
    _raises_one_line(METRICS[name], x[:, 0], y, match=r"2-D \[n, p\].*x\[:, None\]")


def test_conv_map_given_to_a_single_metric_points_to_to_matrix():
    x, y = _pair()
    _raises_one_line(sim.linear_cka, x.reshape(30, 2, 2, 1), y, match="sim.to_matrix")


@pytest.mark.parametrize("fn", [sim.linear_cka, sim.rbf_cka], ids=["linear", "rbf"])
def test_fewer_than_four_examples_for_the_unbiased_estimator_is_a_user_error(fn):
    x, y = _pair(n=3)
    _raises_one_line(functools.partial(fn, debiased=True), x, y, match="at least 4 examples")
    acc = sim.MinibatchCKA()
    with pytest.raises(UserError, match="at least 4 examples"):
        acc.update(acc.init(1, 1), [x], [y])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("name", METRICS)
def test_nan_or_inf_input_is_a_user_error_when_eager_and_nan_under_jit(name, bad):
    x, y = _pair()
    y[3, 1] = bad
    _raises_one_line(METRICS[name], x, y, match="y contains 1 NaN or inf")
    assert np.isnan(np.asarray(jax.jit(METRICS[name])(x, y))).all()


@pytest.mark.parametrize("name", METRICS)
def test_constant_representation_is_a_user_error_when_eager_and_nan_under_jit(name):
    x, y = _pair()
    x[:] = 2.5
    _raises_one_line(METRICS[name], x, y, match="same for every example")
    assert np.isnan(np.asarray(jax.jit(METRICS[name])(x, y))).all()


def test_rbf_cka_with_zero_median_distance_is_a_user_error_not_nan():
    x, y = _pair(n=20)
    x[:15] = x[0]  # 15 identical examples: 230 of the 400 squared distances are 0
    _raises_one_line(sim.rbf_cka, x, y, match="median squared distance .* is 0")
    _raises_one_line(sim.all_pairs, "rbf_cka", [y, x], match=r"xs\[1\] is 0")
    assert np.isnan(float(jax.jit(sim.rbf_cka)(x, y)))


DEGENERATE_CCA = {
    **{name: METRICS[name] for name in ["r2_cca", "mean_cca_rho", "cca_correlations", "pwcca"]},
    "r2_lr": sim.r2_lr,
    # SVCCA keeping every component; with the 0.99 rule it keeps fewer and is defined.
    "svcca_all_components": functools.partial(sim.svcca, variance=1.0),
}


@pytest.mark.parametrize("name", DEGENERATE_CCA)
def test_cca_family_with_rank_reaching_n_minus_one_is_degenerate(name):
    # 20 examples, 25 features: rank(x̃) = 19 = n - 1, so every canonical correlation is 1.
    x, y = _pair(n=20, p1=25, p2=3)
    _raises_one_line(DEGENERATE_CCA[name], x, y, match="19 directions, reaching n - 1 = 19")
    assert np.isnan(np.asarray(jax.jit(DEGENERATE_CCA[name])(x, y))).all()


def test_svcca_truncation_avoids_the_degenerate_case():
    x, y = _pair(n=20, p1=25, p2=3)
    assert 0.0 < float(sim.svcca(x, y, k=5)) < 1.0


def test_rank_sum_beyond_n_forces_that_many_noise_correlations_to_one():
    # Documented partial inflation: rank 18 + rank 3 - (n - 1) = 2 correlations of pure noise
    # are 1 by construction; with rank 8 + 3 <= 19 none is.
    x, y = _pair(n=20, p1=25, p2=3)
    with pytest.warns(UserWarning, match="18 \\+ 3 directions.*at least 2 canonical"):
        inflated = np.asarray(sim.cca_correlations(x[:, :18], y))
    honest = np.asarray(sim.cca_correlations(x[:, :8], y))
    np.testing.assert_allclose(inflated[:2], 1.0, atol=1e-5)
    assert honest.max() < 0.95


def test_r2_lr_with_a_wide_target_is_defined():
    x, y = _pair(n=20, p1=3, p2=25)
    assert 0.0 < float(sim.r2_lr(x, y)) < 1.0
    _raises_one_line(sim.r2_lr, y, x, match="x has rank 19")


def test_rsa_example_with_undefined_pearson_similarity_is_a_user_error():
    x, y = _pair()
    x[4] = 2.5  # the same value for every feature: no correlation with any other example
    _raises_one_line(sim.rsa, x, y, match="undefined pearson similarity .constant across its")
    _raises_one_line(sim.all_pairs, "rsa", [x], [y], match="undefined pearson similarity")
    assert np.isfinite(float(sim.rsa(x, y, kernel="euclidean")))
    # Centring the columns first moves the problem to the mean example (0 after centring).
    x, _ = _pair()
    x[4] = np.delete(x, 4, axis=0).mean(axis=0)
    assert np.isfinite(float(sim.rsa(x, y)))
    _raises_one_line(
        functools.partial(sim.rsa, center_columns=True), x, y, match="after centring the columns"
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x, y: sim.rsa(x, y, kernel="spearman"), "unknown RSA kernel"),
        (lambda x, y: sim.svcca(x, y, k=0), "k must be a positive int"),
        (lambda x, y: sim.svcca(x, y, variance=1.5), r"variance must be in \(0, 1\]"),
        (lambda x, y: sim.rbf_cka(x, y, bandwidth=0.0), "bandwidth must be > 0"),
        (lambda x, y: sim.to_matrix(x, "avg"), "unknown conv_rule 'avg'"),
        (lambda x, y: sim.all_pairs("cka", [x], [y]), "unknown similarity metric 'cka'"),
        (lambda x, y: sim.all_pairs("linear_cka", [x], [y], bandwidth=1.0), "no option"),
        (lambda x, y: sim.all_pairs(sim.linear_cka, [x, y[:-1]], [y]), "different numbers"),
        (lambda x, y: sim.all_pairs(sim.linear_cka, [], [y]), "holds no layers"),
    ],
)
def test_bad_options_are_user_errors(call, match):
    x, y = _pair()
    _raises_one_line(call, x, y, match=match)


def test_all_pairs_names_the_bad_layer():
    x, y = _pair()
    x[0, 0] = np.nan
    _raises_one_line(sim.all_pairs, "linear_cka", {"conv1": y, "conv2": x}, [y], match="conv2")
