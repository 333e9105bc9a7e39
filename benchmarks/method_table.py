"""One row of the methods table in docs/multiview.md: pretrain a config, read it out.

    python benchmarks/method_table.py experiments/byol_mnist.py
        [--set objective.use_predictor=False] [--label "BYOL, no predictor"] [--workdir DIR]

Trains the config as ``python -m ssl_jax.train`` would (readout included: the trained encoder
beside the same encoder at its random initialisation, weighted kNN and the L-BFGS linear probe
on the held-out split), then prints a markdown row: method, steps, batch, wall time, kNN and
linear (trained / random init), and the collapse diagnostics of the last logged step
(effective rank and per-dimension std of the normalised embedding).
"""

import argparse
import json
import os
import tempfile
import time

from ssl_jax.config import apply_overrides, load_config
from ssl_jax.train import train


def last_metrics(workdir: str) -> dict:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return records[-1] if records else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, a.b=value")
    parser.add_argument("--label", default="")
    parser.add_argument("--workdir", default="")
    args = parser.parse_args()
    config = load_config(args.config)
    apply_overrides(config, args.set)
    workdir = args.workdir or tempfile.mkdtemp(prefix="method_table_")
    start = time.perf_counter()
    readout = train(config, workdir)
    wall = time.perf_counter() - start
    rep = (
        "encoder"
        if "encoder" in readout["representations"]
        else next(iter(readout["representations"]))
    )
    scores = readout["representations"][rep]["labels"]
    metrics = last_metrics(workdir)
    label = args.label or config.objective.name
    knn, linear = scores["knn"], scores["linear"]
    row = (
        f"| {label} | {config.num_steps} | {config.batch_size} | {wall / 60:.1f} min "
        f"| {knn['trained']:.3f} / {knn['random_init']:.3f} "
        f"| {linear['trained']:.3f} / {linear['random_init']:.3f} "
        f"| {metrics.get('effective_rank', float('nan')):.1f} "
        f"| {metrics.get('embedding_std', float('nan')):.3f} |"
    )
    print(
        "| method | steps | batch | wall (2 CPU cores) | kNN trained / random | "
        "linear trained / random | effective rank | embedding std |"
    )
    print(row)


if __name__ == "__main__":
    main()
