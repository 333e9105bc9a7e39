"""Few-shot linear evaluation: k labelled examples per class, several seeded draws.

Notes 001 §2.1.2 (few labels: a linear probe can beat fine-tuning). For each k in ``shots``
and each of ``draws`` draws (seed, draw), k training examples per class form the support set
and a linear classifier is fitted on it:

- ``method="ridge"`` (closed form, as big_vision's few-shot evaluator): features whitened per
  dimension with the mean and std of the whole training split's features (no labels used),
  targets ±1 one-hot, W = Xᵀ(XXᵀ + λI)⁻¹Y with a bias column, λ = ``ridge_l2`` fixed.
- ``method="lbfgs"``: the L-BFGS logistic regression of `linear_probe` at a fixed λ
  (``lbfgs_l2``): with one shot per class there is nothing to validate on.

The mean and standard deviation of test accuracy over the draws are reported per k.
"""

import numpy as np

from ssl_jax.errors import UserError
from ssl_jax.evaluation.checks import check_features_and_labels, check_same_dimensions
from ssl_jax.evaluation.linear_probe import fit_logistic_regression


def _support_indices(labels, shots, rng):
    classes = np.unique(labels)
    return np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), size=shots, replace=False) for c in classes]
    )


def _ridge_predict(support_x, support_y, test_x, num_classes, l2):
    targets = 2.0 * np.eye(num_classes)[support_y] - 1.0
    x = np.concatenate([support_x, np.ones((len(support_x), 1))], axis=1)
    gram = x @ x.T + l2 * np.eye(len(x))
    weights = x.T @ np.linalg.solve(gram, targets)
    test = np.concatenate([test_x, np.ones((len(test_x), 1))], axis=1)
    return np.argmax(test @ weights, axis=1)


def fewshot(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    shots=None,
    draws=5,
    seed=0,
    method="ridge",
    ridge_l2=1.0,
    lbfgs_l2=1e-2,
) -> dict:
    """Few-shot accuracy per number of shots; ``shots=None`` uses 1, 5, 10, 25 where possible."""
    train_x, train_y = check_features_and_labels(train_x, train_y, "train")
    test_x, test_y = check_features_and_labels(test_x, test_y, "test")
    check_same_dimensions(train_x, test_x)
    if method not in ("ridge", "lbfgs"):
        raise UserError(f"fewshot method must be 'ridge' or 'lbfgs', got {method!r}.")
    counts = {int(c): int(n) for c, n in zip(*np.unique(train_y, return_counts=True), strict=True)}
    smallest = min(counts.values())
    if shots is None:
        shots = [k for k in (1, 5, 10, 25) if k <= smallest]
    for k in shots:
        if k > smallest:
            short = min(counts, key=counts.get)
            raise UserError(
                f"{k} shots requested but class {short} has only {counts[short]} training "
                f"examples; use shots <= {smallest}."
            )
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    whiten = lambda x: (x - mean) / np.where(std > 1e-8, std, 1.0)
    train_w, test_w = whiten(train_x), whiten(test_x)

    results = {}
    for k in shots:
        accuracies = []
        for draw in range(draws):
            rng = np.random.default_rng([seed, k, draw])
            idx = _support_indices(train_y, k, rng)
            if method == "ridge":
                predictions = _ridge_predict(
                    train_w[idx], train_y[idx], test_w, num_classes, ridge_l2
                )
            else:
                # Padded (weight 0) to the largest support set: one compiled fit for every k.
                padded = np.resize(idx, max(shots) * len(counts))
                params, _ = fit_logistic_regression(
                    train_w[padded],
                    train_y[padded],
                    lbfgs_l2,
                    num_classes,
                    rows=np.arange(len(idx)),
                )
                predictions = np.argmax(
                    test_w @ np.asarray(params["w"]) + np.asarray(params["b"]), 1
                )
            accuracies.append(float(np.mean(predictions == test_y)))
        results[str(k)] = {
            "mean": float(np.mean(accuracies)),
            "std": float(np.std(accuracies)),
            "draws": accuracies,
        }
    return {
        "protocol": f"fewshot ({method})",
        "test_top1_by_shots": results,
        "settings": {
            "shots": list(shots),
            "draws": draws,
            "seed": seed,
            "method": method,
            "l2": ridge_l2 if method == "ridge" else lbfgs_l2,
            "whitening": "per-dimension mean/std of all training features (labels unused)",
            "support_seed": "numpy default_rng([seed, shots, draw])",
        },
    }
