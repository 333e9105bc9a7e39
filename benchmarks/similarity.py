"""Speed of all-layer-pairs similarity: `sim.all_pairs` against a plain NumPy loop over pairs.

    python benchmarks/similarity.py [--n 10000] [--layers 12] [--features 512] [--numpy-pairs 0]

Two "networks" of 12 layers, 10,000 examples, 512 features per layer (float32). Times the
[12, 12] matrix of linear CKA, debiased linear CKA and CCA (mean canonical correlation ρ̄) with
`sim.all_pairs` (first call, which compiles, and a second, steady-state call) and with a
straightforward NumPy loop calling a per-pair function 144 times, as one would write it from
the formulas (centre, products, QR + SVD for CCA). ``--numpy-pairs K`` times only K pairs of the
loop and scales to all of them (each pair costs the same). Also reports the `MinibatchCKA`
throughput (examples/s for 12 × 12 layers) and, on 3 × 3 layers, how far float32 is from
float64.
"""

import argparse
import time

import jax
import numpy as np

from ssl_jax import similarity as sim

# --- The NumPy baseline: one pair at a time ---------------------------------------------------


def numpy_linear_cka(x, y):
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def _numpy_unbiased_hsic(x, y):
    n = x.shape[0]
    d, e = np.sum(x**2, axis=1), np.sum(y**2, axis=1)
    cross = np.linalg.norm(x.T @ y) ** 2
    return (cross - n / (n - 2) * d @ e + d.sum() * e.sum() / ((n - 1) * (n - 2))) / (n * (n - 3))


def numpy_debiased_linear_cka(x, y):
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    return _numpy_unbiased_hsic(x, y) / np.sqrt(
        _numpy_unbiased_hsic(x, x) * _numpy_unbiased_hsic(y, y)
    )


def numpy_mean_cca_rho(x, y):
    qx, _ = np.linalg.qr(x - x.mean(axis=0))
    qy, _ = np.linalg.qr(y - y.mean(axis=0))
    return np.linalg.svd(qx.T @ qy, compute_uv=False).mean()


BENCHMARKS = (
    ("linear CKA", "linear_cka", {}, numpy_linear_cka),
    ("debiased linear CKA", "linear_cka", {"debiased": True}, numpy_debiased_linear_cka),
    ("CCA (ρ̄)", "mean_cca_rho", {}, numpy_mean_cca_rho),
)


def numpy_loop(fn, xs, ys, num_pairs):
    """Seconds for the full L1×L2 loop (timed on num_pairs pairs and scaled if fewer)."""
    pairs = [(a, b) for a in range(len(xs)) for b in range(len(ys))]
    timed = pairs if not num_pairs else pairs[:num_pairs]
    start = time.perf_counter()
    values = {(a, b): fn(xs[a], ys[b]) for a, b in timed}
    return (time.perf_counter() - start) * len(pairs) / len(timed), values


def timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - start, out


def make_layers(n, num_layers, features, seed):
    """Layers that share a 32-dimensional latent (so the similarities are not all ~0)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 32)).astype(np.float32)
    return [
        (np.tanh(z @ rng.normal(size=(32, features))) + rng.normal(size=(n, features))).astype(
            np.float32
        )
        for _ in range(num_layers)
    ]


def minibatch_throughput(xs, ys, batch_size):
    acc = sim.MinibatchCKA()
    n = xs[0].shape[0]
    update = jax.jit(acc.update)
    state = acc.init(len(xs), len(ys))
    jax.block_until_ready(update(state, [a[:batch_size] for a in xs], [b[:batch_size] for b in ys]))
    start = time.perf_counter()
    for i in range(0, n - batch_size + 1, batch_size):
        state = update(
            state, [a[i : i + batch_size] for a in xs], [b[i : i + batch_size] for b in ys]
        )
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    return (n // batch_size) * batch_size / seconds


def float32_error(xs, ys):
    """Max relative difference float32 vs float64 of all_pairs on the given layers."""
    errors = {}
    for label, metric, options, _ in BENCHMARKS:
        single = np.asarray(sim.all_pairs(metric, xs, ys, **options), np.float64)
        with jax.enable_x64(True):
            double = np.asarray(
                sim.all_pairs(
                    metric,
                    [a.astype(np.float64) for a in xs],
                    [b.astype(np.float64) for b in ys],
                    **options,
                )
            )
        difference = np.abs(single - double)
        errors[label] = (float(np.max(difference / np.abs(double))), float(np.max(difference)))
    return errors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000, help="examples")
    p.add_argument("--layers", type=int, default=12, help="layers per network")
    p.add_argument("--features", type=int, default=512, help="features per layer")
    p.add_argument("--numpy-pairs", type=int, default=0, help="time only this many pairs (0: all)")
    p.add_argument("--batch-size", type=int, default=1000, help="MinibatchCKA batch size")
    args = p.parse_args(argv)

    xs = make_layers(args.n, args.layers, args.features, seed=0)
    ys = make_layers(args.n, args.layers, args.features, seed=1)
    pairs = args.layers**2
    print(
        f"{args.layers}×{args.layers} layer pairs, n={args.n}, {args.features} features per "
        f"layer, float32, {jax.devices()[0].device_kind} ({jax.device_count()} device)",
        flush=True,
    )
    rows = []
    for label, metric, options, numpy_fn in BENCHMARKS:
        first, _ = timed(lambda: sim.all_pairs(metric, xs, ys, **options))  # noqa: B023
        steady, matrix = timed(lambda: sim.all_pairs(metric, xs, ys, **options))  # noqa: B023
        loop, values = numpy_loop(numpy_fn, xs, ys, args.numpy_pairs)
        worst = max(abs(float(matrix[a, b]) - v) / abs(v) for (a, b), v in values.items())
        rows.append((label, first, steady, loop, loop / steady, worst))
        print(
            f"  {label}: all_pairs {steady:.1f}s (first call {first:.1f}s), NumPy loop "
            f"{loop:.1f}s, ratio {loop / steady:.1f}x, max rel. difference {worst:.1e}",
            flush=True,
        )

    throughput = minibatch_throughput(xs, ys, args.batch_size)
    few = min(3, args.layers)
    errors = float32_error(xs[:few], ys[:few])

    print()
    print(
        f"| metric ({pairs} pairs) | all_pairs (s) | first call (s) | NumPy loop (s) | speed-up |"
    )
    print("|---|---|---|---|---|")
    for label, first, steady, loop, ratio, _ in rows:
        print(f"| {label} | {steady:.1f} | {first:.1f} | {loop:.1f} | {ratio:.1f}× |")
    print()
    print(
        f"MinibatchCKA, {args.layers}×{args.layers} layers, batch {args.batch_size}: "
        f"{throughput:,.0f} examples/s"
    )
    print(
        f"float32 vs float64 on {few}×{few} layers (max relative / absolute difference): "
        + ", ".join(f"{label} {rel:.1e} / {abs_:.1e}" for label, (rel, abs_) in errors.items())
    )


if __name__ == "__main__":
    main()
