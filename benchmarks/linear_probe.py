"""The L-BFGS linear probe against scikit-learn on the same features and the same sweep.

    python benchmarks/linear_probe.py [--n 50000] [--dim 512] [--classes 10]

Features are synthetic but learnable: Gaussian class clusters (random unit means, scaled so
the classes overlap) plus isotropic noise, float32. Both solvers fit the 13-value sweep
λ = 1e6 … 1e-6 (C = 1/(nλ) for scikit-learn's LogisticRegression(lbfgs)), each warm-started
from the previous solution, on standardised features; the JAX time excludes compilation,
which is reported separately.
"""

import argparse
import time

import jax
import numpy as np
from sklearn.linear_model import LogisticRegression

from ssl_jax.evaluation.linear_probe import DEFAULT_L2_GRID, fit_logistic_regression


def make_features(n, dim, classes, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, dim))
    means *= 1.5 / np.linalg.norm(means, axis=1, keepdims=True)
    labels = rng.integers(0, classes, n)
    x = means[labels] + rng.normal(size=(n, dim)) / np.sqrt(dim) * 3.0
    x = (x - x.mean(0)) / x.std(0)
    return x.astype(np.float32), labels.astype(np.int32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    x, y = make_features(args.n, args.dim, args.classes)
    grid = sorted(DEFAULT_L2_GRID, reverse=True)

    start = time.perf_counter()
    params, _ = fit_logistic_regression(x[:64], y[:64], 1.0, args.classes, max_iter=2)
    jax.block_until_ready(params)
    compile_small = time.perf_counter() - start

    start = time.perf_counter()
    params, _ = fit_logistic_regression(x, y, grid[0], args.classes, max_iter=1)
    jax.block_until_ready(params)
    compile_sec = time.perf_counter() - start

    start = time.perf_counter()
    params, jax_values = None, []
    for l2 in grid:
        params, info = fit_logistic_regression(x, y, l2, args.classes, init=params)
        jax_values.append(info["objective"])
    jax.block_until_ready(params)
    jax_sec = time.perf_counter() - start

    start = time.perf_counter()
    model = LogisticRegression(warm_start=True, max_iter=1000, tol=1e-6)
    for l2 in grid:
        model.set_params(C=1.0 / (args.n * l2))
        model.fit(x, y)
    sklearn_sec = time.perf_counter() - start

    print(f"features: {args.n} × {args.dim}, {args.classes} classes, {len(grid)}-value sweep")
    print(f"jax L-BFGS: {jax_sec:.1f} s (+ {compile_sec + compile_small:.1f} s compilation)")
    print(f"scikit-learn lbfgs: {sklearn_sec:.1f} s")
    print(f"speed-up: {sklearn_sec / jax_sec:.2f}×")


if __name__ == "__main__":
    main()
