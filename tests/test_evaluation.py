"""Evaluation protocols: agreement with scikit-learn, determinism, chunking, diagnostics."""

import contextlib
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ssl_jax.errors import UserError
from ssl_jax.evaluation import (
    alignment,
    class_subset,
    collapse_diagnostics,
    effective_rank,
    embedding_std,
    fewshot,
    fit_logistic_regression,
    knn_classify,
    knn_sweep,
    linear_probe,
    logistic_objective,
    plot_projections,
    sklearn_c,
    uniformity,
)
from ssl_jax.evaluation.linear_probe import _lbfgs_fit

# The module, not the function of the same name that ssl_jax.evaluation exports.
fewshot_module = importlib.import_module("ssl_jax.evaluation.fewshot")


@pytest.fixture(scope="module")
def digit_pixels(digits):
    flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
    return (
        flat(digits.train_images),
        digits.train_labels,
        flat(digits.test_images),
        digits.test_labels,
    )


@pytest.mark.parametrize("l2", [1e1, 1e-1, 1e-3])
def test_lbfgs_probe_matches_sklearn_objective_and_accuracy(digit_pixels, l2):
    train_x, train_y, test_x, test_y = digit_pixels
    mean, std = train_x.mean(0), train_x.std(0)
    std[std < 1e-8] = 1.0
    xs, xt = (train_x - mean) / std, (test_x - mean) / std
    params, info = fit_logistic_regression(xs, train_y, l2, num_classes=10)
    sk = LogisticRegression(C=sklearn_c(l2, len(xs)), max_iter=5000, tol=1e-10).fit(xs, train_y)
    sk_params = {
        "w": jnp.asarray(sk.coef_.T, jnp.float32),
        "b": jnp.asarray(sk.intercept_, jnp.float32),
    }
    sk_objective = float(
        logistic_objective(sk_params, jnp.asarray(xs), jax.nn.one_hot(train_y, 10), l2)
    )
    assert info["objective"] == pytest.approx(sk_objective, rel=1e-4)
    ours = np.mean(np.argmax(xt @ np.asarray(params["w"]) + np.asarray(params["b"]), 1) == test_y)
    assert abs(ours - sk.score(xt, test_y)) <= 0.005


def test_warm_start_needs_fewer_iterations_than_a_cold_start(digit_pixels):
    train_x, train_y, _, _ = digit_pixels
    xs = (train_x - train_x.mean(0)) / np.maximum(train_x.std(0), 1e-8)
    previous, _ = fit_logistic_regression(xs, train_y, 1e-2, num_classes=10)
    _, cold = fit_logistic_regression(xs, train_y, 3e-3, num_classes=10)
    _, warm = fit_logistic_regression(xs, train_y, 3e-3, num_classes=10, init=previous)
    assert warm["iterations"] < cold["iterations"]
    assert warm["objective"] == pytest.approx(cold["objective"], rel=1e-4)


def test_a_fit_on_some_rows_equals_a_fit_on_those_rows_alone(digit_pixels):
    train_x, train_y, _, _ = digit_pixels
    xs = (train_x - train_x.mean(0)) / np.maximum(train_x.std(0), 1e-8)
    rows = np.arange(0, len(xs), 3)
    subset, subset_info = fit_logistic_regression(xs[rows], train_y[rows], 1e-2, num_classes=10)
    masked, masked_info = fit_logistic_regression(xs, train_y, 1e-2, num_classes=10, rows=rows)
    assert masked_info["objective"] == pytest.approx(subset_info["objective"], rel=1e-4)
    np.testing.assert_allclose(masked["w"], subset["w"], atol=2e-3)
    # The other rows count for nothing: changing their labels leaves the fit unchanged.
    relabelled = np.where(np.isin(np.arange(len(xs)), rows), train_y, (train_y + 1) % 10)
    again, _ = fit_logistic_regression(xs, relabelled, 1e-2, num_classes=10, rows=rows)
    np.testing.assert_array_equal(again["w"], masked["w"])


@contextlib.contextmanager
def traces_of(fun_name):
    """Counts the jit traces of functions named `fun_name` (JAX's public monitoring events)."""
    traces = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration" and kwargs.get("fun_name") == fun_name:
            traces.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield traces
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_sweep_compiles_once_and_refits_on_train_plus_val(digit_pixels):
    train_x, train_y, test_x, test_y = digit_pixels
    # Drop 5 rows so the shapes are new to the jit cache whatever ran before.
    train_x, train_y = train_x[5:], train_y[5:]
    with traces_of(_lbfgs_fit.__name__) as traces:
        result = linear_probe(train_x, train_y, test_x, test_y, l2_grid=[1e2, 1.0, 1e-2, 1e-4])
    # One compilation for the 4 sweep values, the 2 refinements and the train + val refit.
    assert len(traces) == 1
    assert len(result["sweep"]) == 6  # refined at best × 10^±0.5
    assert result["settings"]["refit_examples"] == len(train_x)
    standardised = (train_x - train_x.mean(0)) / np.where(
        train_x.std(0) > 1e-8, train_x.std(0), 1.0
    )
    _, info = fit_logistic_regression(standardised, train_y, result["best_l2"], 10)
    assert result["objective"] == pytest.approx(info["objective"], rel=1e-5)
    assert result["sklearn_C"] == pytest.approx(1 / (len(train_x) * result["best_l2"]))
    assert "test_top5" not in result


def test_top5_is_reported_beyond_ten_classes():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(12, 8))
    y = rng.integers(0, 12, 600).astype(np.int32)
    x = means[y] + rng.normal(size=(600, 8))
    result = linear_probe(x[:400], y[:400], x[400:], y[400:], l2_grid=[1e-1, 1e-3])
    assert result["test_top5"] >= result["test_top1"] > 1 / 12
    assert result["test_top5"] > 0.9


def test_linear_probe_learns_digits_and_never_looks_at_test_labels(digit_pixels):
    train_x, train_y, test_x, test_y = digit_pixels
    result = linear_probe(
        train_x, train_y, test_x, test_y, l2_grid=[1e1, 1e-1, 1e-3, 1e-5], refine=False
    )
    assert result["test_top1"] > 0.9
    shuffled = np.random.default_rng(0).permutation(test_y)
    again = linear_probe(
        train_x, train_y, test_x, shuffled, l2_grid=[1e1, 1e-1, 1e-3, 1e-5], refine=False
    )
    assert again["best_l2"] == result["best_l2"] and again["val_top1"] == result["val_top1"]
    assert result["settings"]["val_examples"] == 150


def test_knn_votes_by_hand():
    train_x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    train_y = np.array([0, 0, 1])
    test_x = np.array([[0.2, 1.0], [1.0, 0.05]])
    # k=3 and a huge temperature: unweighted majority → class 0 twice.
    assert (
        knn_classify(train_x, train_y, test_x, np.array([0, 0]), k=3, temperature=1e6)["test_top1"]
        == 1.0
    )
    # k=3 with T=0.07: the single close class-1 neighbour outweighs two far class-0 ones.
    assert (
        knn_classify(train_x, train_y, test_x, np.array([1, 0]), k=3, temperature=0.07)["test_top1"]
        == 1.0
    )


def test_knn_is_chunk_independent_and_deterministic(digit_pixels):
    train_x, train_y, test_x, test_y = digit_pixels
    whole = knn_sweep(train_x, train_y, test_x, test_y, chunk_size=4096)
    chunked = knn_sweep(train_x, train_y, test_x, test_y, chunk_size=64)
    odd = knn_sweep(train_x, train_y, test_x, test_y, chunk_size=7)
    assert whole["test_top1_by_k"] == chunked["test_top1_by_k"] == odd["test_top1_by_k"]
    assert knn_sweep(train_x, train_y, test_x, test_y, chunk_size=64) == chunked
    assert whole["test_top1"] > 0.9
    assert set(whole["test_top1_by_k"]) == {"10", "20", "100", "200"}
    # k capped by the training-set size; classes counted from the training labels.
    small = knn_sweep(train_x[:50], train_y[:50], test_x, test_y)
    assert small["settings"]["ks"] == [10, 20, 50]
    assert small["settings"]["num_classes"] == int(train_y[:50].max()) + 1


def test_fewshot_is_deterministic_given_the_seed(digit_pixels):
    train_x, train_y, test_x, test_y = digit_pixels
    a = fewshot(train_x, train_y, test_x, test_y, shots=[1, 5], draws=3, seed=1)
    b = fewshot(train_x, train_y, test_x, test_y, shots=[1, 5], draws=3, seed=1)
    c = fewshot(train_x, train_y, test_x, test_y, shots=[1, 5], draws=3, seed=2)
    assert a == b and a != c
    by_shots = a["test_top1_by_shots"]
    assert by_shots["5"]["mean"] > by_shots["1"]["mean"] > 0.3
    assert by_shots["1"]["std"] > 0 and len(by_shots["1"]["draws"]) == 3
    lbfgs = fewshot(train_x, train_y, test_x, test_y, shots=[5], draws=2, method="lbfgs")
    assert lbfgs["test_top1_by_shots"]["5"]["mean"] > 0.5
    default = fewshot(train_x, train_y, test_x, test_y, draws=2)
    assert default["settings"]["shots"] == [1, 5, 10, 25]
    mean = lambda k: default["test_top1_by_shots"][k]["mean"]
    assert mean("25") > mean("1")


def test_fewshot_draws_match_whatever_the_method(digit_pixels, monkeypatch):
    # Same seed, same support sets: ridge and L-BFGS are compared on identical draws.
    train_x, train_y, test_x, test_y = digit_pixels
    seen = {"ridge": [], "lbfgs": []}
    ridge_predict, fit = fewshot_module._ridge_predict, fewshot_module.fit_logistic_regression

    def spy_ridge(support_x, support_y, *args):
        seen["ridge"].append((np.asarray(support_x), np.asarray(support_y)))
        return ridge_predict(support_x, support_y, *args)

    def spy_fit(x, y, *args, rows, **kwargs):
        seen["lbfgs"].append((np.asarray(x)[rows], np.asarray(y)[rows]))
        return fit(x, y, *args, rows=rows, **kwargs)

    monkeypatch.setattr(fewshot_module, "_ridge_predict", spy_ridge)
    monkeypatch.setattr(fewshot_module, "fit_logistic_regression", spy_fit)
    ridge = fewshot(train_x, train_y, test_x, test_y, shots=[5], draws=2, method="ridge")
    lbfgs = fewshot(train_x, train_y, test_x, test_y, shots=[5], draws=2, method="lbfgs")
    assert len(seen["ridge"]) == len(seen["lbfgs"]) == 2
    for (ridge_x, ridge_y), (lbfgs_x, lbfgs_y) in zip(seen["ridge"], seen["lbfgs"], strict=True):
        np.testing.assert_array_equal(ridge_x, lbfgs_x)
        np.testing.assert_array_equal(ridge_y, lbfgs_y)
    # The two draws are different support sets (otherwise "identical draws" proves little).
    assert not np.array_equal(seen["ridge"][0][0], seen["ridge"][1][0])
    assert (
        abs(ridge["test_top1_by_shots"]["5"]["mean"] - lbfgs["test_top1_by_shots"]["5"]["mean"])
        < 0.15
    )


def test_collapse_diagnostics_tell_collapse_from_spread():
    spread = jax.random.normal(jax.random.PRNGKey(0), (2000, 16))
    collapsed = jnp.ones((2000, 16)) + 1e-9 * spread
    assert float(embedding_std(spread)) == pytest.approx(1 / 4, rel=0.05)
    assert float(embedding_std(collapsed)) < 1e-6
    assert float(effective_rank(spread)) > 14 and float(effective_rank(collapsed)) < 1.1
    assert float(alignment(spread, spread)) == pytest.approx(0.0, abs=1e-6)
    clustered = spread.at[:, 1:].multiply(0.05)
    assert float(uniformity(spread)) < float(uniformity(clustered))
    assert set(collapse_diagnostics(spread)) >= {"embedding_std", "effective_rank", "uniformity"}


def _short_class(x, y):
    """Features and labels in which class 3 has only two examples."""
    keep = (y != 3) | (np.cumsum(y == 3) <= 2)
    return x[keep], y[keep]


def test_plots_write_pca_and_tsne_pngs(digit_pixels, tmp_path):
    _, _, test_x, test_y = digit_pixels
    result = plot_projections(test_x, test_y, str(tmp_path), prefix="digits", max_points=100)
    for method in ("pca", "tsne"):
        with open(result["paths"][method], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert result["settings"]["points"] == 100


def test_class_subset_renumbers_labels_for_transfer(digits):
    upper = class_subset(digits, [5, 6, 7, 8, 9])
    assert set(np.unique(upper.train_labels)) == set(range(5))
    assert len(upper.train_images) == int(np.sum(digits.train_labels >= 5))
    assert np.array_equal(upper.test_images, digits.test_images[digits.test_labels >= 5])
    with pytest.raises(UserError, match="at least two distinct classes"):
        class_subset(digits, [3, 42])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x, y: knn_classify(x, y[:-1], x, y), "labels of shape"),
        (lambda x, y: knn_classify(x, y, x, y, k=10_000), "k=10000 but the training set has"),
        (lambda x, y: linear_probe(np.where(x > 0.5, np.nan, x), y, x, y), "NaN or inf"),
        (lambda x, y: linear_probe(x[:, 0], y, x, y), "expected \\[N, D\\]"),
        (lambda x, y: fewshot(x, y, x, y, shots=[500]), "500 shots requested but class"),
        (lambda x, y: knn_classify(x, y + 0.5, x, y), "labels must be integers"),
        (lambda x, y: knn_sweep(np.where(x > 0.5, np.nan, x), y, x, y), "NaN or inf"),
        (lambda x, y: fewshot(x, y[:-3], x, y), "labels of shape"),
        (lambda x, y: fewshot(x[y != 3], y[y != 3], x, y, shots=[5], method="x"), "ridge"),
        (lambda x, y: fewshot(*_short_class(x, y), x, y, shots=[5]), "class 3 has only 2"),
        (lambda x, y: linear_probe(x, y, x[:, :10], y), "dimensions"),
        (lambda x, y: plot_projections(x, y, "/tmp", methods=["umap"]), "unknown projection"),
    ],
)
def test_bad_input_is_named(call, message, digit_pixels):
    train_x, train_y, _, _ = digit_pixels
    with pytest.raises(UserError, match=message):
        call(train_x, train_y)
