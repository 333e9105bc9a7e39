"""Evaluation protocols: agreement with scikit-learn, determinism, chunking, diagnostics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ssl_jax.errors import UserError
from ssl_jax.evaluation import (
    alignment,
    collapse_diagnostics,
    effective_rank,
    embedding_std,
    fewshot,
    fit_logistic_regression,
    knn_classify,
    knn_sweep,
    linear_probe,
    logistic_objective,
    uniformity,
)


@pytest.fixture(scope="module")
def digit_pixels(digits):
    flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
    return (
        flat(digits.train_images),
        digits.train_labels,
        flat(digits.test_images),
        digits.test_labels,
    )


def test_lbfgs_probe_matches_sklearn_objective_and_accuracy(digit_pixels):
    train_x, train_y, test_x, test_y = digit_pixels
    mean, std = train_x.mean(0), train_x.std(0)
    std[std < 1e-8] = 1.0
    xs, xt = (train_x - mean) / std, (test_x - mean) / std
    l2 = 1e-3
    params, info = fit_logistic_regression(xs, train_y, l2, num_classes=10)
    sk = LogisticRegression(C=1.0 / (len(xs) * l2), max_iter=5000, tol=1e-10).fit(xs, train_y)
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
    assert whole["test_top1_by_k"] == chunked["test_top1_by_k"]
    assert whole["test_top1"] > 0.9
    assert set(whole["test_top1_by_k"]) == {"10", "20", "100", "200"}


def test_fewshot_is_deterministic_given_the_seed(digit_pixels):
    train_x, train_y, test_x, test_y = digit_pixels
    a = fewshot(train_x, train_y, test_x, test_y, shots=[1, 5], draws=3, seed=1)
    b = fewshot(train_x, train_y, test_x, test_y, shots=[1, 5], draws=3, seed=1)
    assert a == b
    by_shots = a["test_top1_by_shots"]
    assert by_shots["5"]["mean"] > by_shots["1"]["mean"] > 0.3
    lbfgs = fewshot(train_x, train_y, test_x, test_y, shots=[5], draws=2, method="lbfgs")
    assert lbfgs["test_top1_by_shots"]["5"]["mean"] > 0.5


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


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x, y: knn_classify(x, y[:-1], x, y), "labels of shape"),
        (lambda x, y: knn_classify(x, y, x, y, k=10_000), "k=10000 but the training set has"),
        (lambda x, y: linear_probe(np.where(x > 0.5, np.nan, x), y, x, y), "NaN or inf"),
        (lambda x, y: linear_probe(x[:, 0], y, x, y), "expected \\[N, D\\]"),
        (lambda x, y: fewshot(x, y, x, y, shots=[500]), "500 shots requested but class"),
        (lambda x, y: knn_classify(x, y + 0.5, x, y), "labels must be integers"),
    ],
)
def test_bad_input_is_named(call, message, digit_pixels):
    train_x, train_y, _, _ = digit_pixels
    with pytest.raises(UserError, match=message):
        call(train_x, train_y)
