"""The transformation-prediction table of docs/prediction.md: rotation, jigsaw and relative
position trained with the same encoder, batch and step budget on the MNIST subset, each read
out beside the same network at its random initialisation and the raw pixels.

    python benchmarks/prediction_table.py [--steps 500] [--seed 0] [--set KEY=VALUE ...]
        [--workdir DIR]

Each of experiments/{rotation,jigsaw,relative_position}_mnist.py trains as ``python -m
ssl_jax.train`` would, with ``--steps`` and ``--seed`` (and any ``--set`` overrides) applied to
all three; the readout is the trainer's own (weighted kNN, k = 20, and the L-BFGS linear probe
on the 1,000 held-out digits). Wall time covers compilation, training and readout. Prints one
markdown row per objective: its last logged pretext accuracy and loss, its training rate, and
held-out accuracy trained / random init / pixels.
"""

import argparse
import json
import os
import tempfile
import time

from ssl_jax.config import apply_overrides, load_config
from ssl_jax.train import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJECTIVES = ("rotation", "jigsaw", "relative_position")


def last_logged(workdir: str) -> dict:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if '"pretext_accuracy"' in line]
    return rows[-1]


def table_row(name: str, args, root: str) -> str:
    config = load_config(os.path.join(REPO, "experiments", f"{name}_mnist.py"))
    apply_overrides(config, [f"num_steps={args.steps}", f"seed={args.seed}", *args.set])
    config.checkpoint_every = config.num_steps
    workdir = os.path.join(root, name)
    start = time.perf_counter()
    readout = train(config, workdir)
    wall = time.perf_counter() - start
    logged = last_logged(workdir)
    scores = readout["representations"]["encoder"]["labels"]

    def cell(protocol):
        s = scores[protocol]
        return f"{s['trained']:.3f} / {s['random_init']:.3f} / {s['pixels']:.3f}"

    return (
        f"| {name} | {config.num_steps} × {config.batch_size} | {wall:.0f} s "
        f"({logged['steps_per_sec']:.1f} steps/s) | {logged['pretext_accuracy']:.3f} "
        f"(loss {logged['loss']:.3f}) | {cell('knn')} | {cell('linear')} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every config")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    root = args.workdir or tempfile.mkdtemp(prefix="prediction_table_")
    print(
        "| objective | steps × batch | wall (training rate) | pretext accuracy (last logged) "
        "| kNN: trained / random init / pixels | linear: trained / random init / pixels |\n"
        "|---|---|---|---|---|---|",
        flush=True,
    )
    for name in args.objectives.split(","):
        print(table_row(name, args, root), flush=True)


if __name__ == "__main__":
    main()
