"""Rows of the methods and collapse tables in docs/multiview.md: pretrain, read out, print.

    python benchmarks/method_table.py experiments/byol_mnist.py [experiments/dino_mnist.py ...]
        [--set num_steps=200 ...] [--label "BYOL"] [--workdir DIR]
    python benchmarks/method_table.py --collapse [--set num_steps=200 ...]

Trains each config as ``python -m ssl_jax.train`` would (readout included: the trained encoder
beside the same encoder at its random initialisation, weighted kNN and the L-BFGS linear probe
on the held-out split), then prints a markdown row: method, steps, batch, wall time, kNN and
linear (trained / random init), and the collapse diagnostics of the last logged step
(effective rank and per-dimension std of the normalised embedding). ``--set`` applies to every
config. ``--collapse`` runs the ablations of notes 001 §3.4 beside the full methods: BYOL
without its predictor, SimSiam without the stop-gradient, DINO without centring and without
sharpening (teacher temperature = student temperature).
"""

import argparse
import json
import os
import tempfile
import time

from ssl_jax.config import apply_overrides, load_config
from ssl_jax.train import train

HEADER = (
    "| method | steps | batch | wall (2 CPU cores) | kNN trained / random | "
    "linear trained / random | effective rank | embedding std |\n|---|---|---|---|---|---|---|---|"
)

# (label, config, overrides): each collapse ablation next to its full method.
COLLAPSE = (
    ("BYOL", "experiments/byol_mnist.py", ()),
    ("BYOL, no predictor", "experiments/byol_mnist.py", ("objective.use_predictor=False",)),
    ("SimSiam", "experiments/simsiam_mnist.py", ()),
    (
        "SimSiam, no stop-gradient",
        "experiments/simsiam_mnist.py",
        ("objective.stop_gradient=False",),
    ),
    ("DINO", "experiments/dino_mnist.py", ()),
    ("DINO, no centring", "experiments/dino_mnist.py", ("objective.centering=False",)),
    (
        "DINO, no sharpening",
        "experiments/dino_mnist.py",
        (
            "objective.teacher_temp=0.1",
            "objective.warmup_teacher_temp=0.1",
            "objective.student_temp=0.1",
        ),
    ),
)


def last_metrics(workdir: str) -> dict:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return records[-1] if records else {}


def table_row(config, label: str, workdir: str) -> str:
    """Trains ``config`` in ``workdir`` and returns its markdown row."""
    start = time.perf_counter()
    readout = train(config, workdir)
    wall = time.perf_counter() - start
    reps = readout["representations"]
    scores = reps["encoder" if "encoder" in reps else next(iter(reps))]["labels"]
    metrics = last_metrics(workdir)
    knn, linear = scores["knn"], scores["linear"]
    return (
        f"| {label} | {config.num_steps} | {config.batch_size} | {wall / 60:.1f} min "
        f"| {knn['trained']:.3f} / {knn['random_init']:.3f} "
        f"| {linear['trained']:.3f} / {linear['random_init']:.3f} "
        f"| {metrics.get('effective_rank', float('nan')):.1f} "
        f"| {metrics.get('embedding_std', float('nan')):.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*")
    parser.add_argument("--collapse", action="store_true", help="the collapse ablations")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, a.b=value")
    parser.add_argument("--label", default="", help="the row's label (one config only)")
    parser.add_argument("--workdir", default="", help="where the runs go (default: a temp dir)")
    args = parser.parse_args()
    runs = list(COLLAPSE) if args.collapse else []
    runs += [(args.label or "", path, ()) for path in args.configs]
    if not runs:
        parser.error("name a config, or pass --collapse")
    root = args.workdir or tempfile.mkdtemp(prefix="method_table_")
    print(HEADER, flush=True)
    for i, (label, path, overrides) in enumerate(runs):
        config = load_config(path)
        apply_overrides(config, [*overrides, *args.set])
        row = table_row(config, label or config.objective.name, os.path.join(root, str(i)))
        print(row, flush=True)


if __name__ == "__main__":
    main()
