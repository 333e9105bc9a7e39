"""Do the protocols order representations sensibly? Trained vs random init, probe vs fine-tune.

    python experiments/protocol_comparison.py --workdir runs/simclr_mnist \
        [--workdir runs/sup_mnist] [--classes 5,6,7,8,9] [--output FILE.md]

For each trained run given (``--workdir``, repeatable: e.g. SimCLR and the supervised
baseline) and for the first run's encoder at its initialisation (the run's own step-0
parameters), on the run's dataset (or ``--dataset``), restricted to ``--classes`` if given
(transfer: a run pretrained on digits 0–4 probed on 5–9), it measures held-out accuracy under:

| row | protocol |
|---|---|
| `knn20` | weighted kNN, k = 20, T = 0.07, all training labels |
| `linear_all` | L-BFGS probe, λ chosen on a validation split, refit on train + val |
| `linear_sgd_all` | SGD probe on the frozen encoder, fixed steps |
| `finetune_all` | fine-tuning with every training label, head from zero, backbone lr × 0.1 |
| `linear_5shot`, `ridge_5shot` | 5 labels per class, L-BFGS at fixed λ / ridge on ±1 targets |
| `finetune_5shot` | fine-tuning on the same 5-per-class support sets |

Few-shot rows are the mean (± std) over ``--draws`` seeded draws; the linear and fine-tuned
5-shot rows use identical support sets. No setting is chosen on the test split: the only
selected hyperparameter is the full-label probe's λ (on validation); the rest are fixed,
stated in the JSON written beside the table, and the last step is reported.

The table in docs/evaluation.md comes from the 500-step SimCLR run of the main job and the
600-step supervised run::

    python -m ssl_jax.train --config experiments/simclr_mnist.py --workdir runs/simclr_mnist
    python -m ssl_jax.train --config experiments/supervised_mnist.py --workdir runs/sup_mnist
    python experiments/protocol_comparison.py --workdir runs/simclr_mnist --workdir runs/sup_mnist
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from ssl_jax import evaluation
from ssl_jax.data import load_dataset
from ssl_jax.encoder import load_encoder
from ssl_jax.evaluate import random_encoder, to_json
from ssl_jax.evaluation.fewshot import _support_indices
from ssl_jax.evaluation.transfer import class_subset

ROWS = (
    "knn20",
    "linear_all",
    "linear_sgd_all",
    "finetune_all",
    "linear_5shot",
    "ridge_5shot",
    "finetune_5shot",
)


def default_settings() -> dict:
    """Fixed hyperparameters of every row (small enough for a 2-core CPU in minutes)."""
    return {
        "shots": 5,
        "draws": 3,
        "seed": 0,
        "sgd": {"steps": 500, "batch_size": 128, "lr": 0.1},
        "finetune_all": {"steps": 500, "batch_size": 128, "lr": 0.05, "backbone_lr_scale": 0.1},
        "finetune_shots": {"steps": 200, "lr": 0.05, "backbone_lr_scale": 0.1},
        "fewshot_lbfgs_l2": 1e-2,
        "fewshot_ridge_l2": 1.0,
    }


def support_sets(labels, shots, draws, seed):
    """The few-shot support indices, drawn exactly as `evaluation.fewshot` draws them."""
    return [
        _support_indices(labels, shots, np.random.default_rng([seed, shots, d]))
        for d in range(draws)
    ]


def mean_std(values) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": list(values)}


def measure(encoder, dataset, settings) -> dict:
    """Every row of the table for one encoder; each entry holds mean, std and the draws."""
    s = settings
    train_x, test_x = encoder.embed(dataset.train_images), encoder.embed(dataset.test_images)
    feats = (train_x, dataset.train_labels, test_x, dataset.test_labels)
    images = (dataset.train_images, dataset.train_labels, dataset.test_images, dataset.test_labels)
    rows, details = {}, {}
    knn = evaluation.knn_classify(*feats, k=min(20, len(train_x)))
    linear = evaluation.linear_probe(*feats, seed=s["seed"])
    sgd = evaluation.linear_probe_sgd(encoder, *images, seed=s["seed"], **s["sgd"])
    tuned = evaluation.finetune(encoder, *images, seed=s["seed"], **s["finetune_all"])
    for name, result in (("knn20", knn), ("linear_all", linear), ("linear_sgd_all", sgd)):
        rows[name], details[name] = mean_std([result["test_top1"]]), result
    rows["finetune_all"], details["finetune_all"] = mean_std([tuned["test_top1"]]), tuned

    k, draws = s["shots"], s["draws"]
    common = dict(shots=[k], draws=draws, seed=s["seed"])
    few_lbfgs = evaluation.fewshot(*feats, method="lbfgs", lbfgs_l2=s["fewshot_lbfgs_l2"], **common)
    few_ridge = evaluation.fewshot(*feats, method="ridge", ridge_l2=s["fewshot_ridge_l2"], **common)
    rows["linear_5shot"] = mean_std(few_lbfgs["test_top1_by_shots"][str(k)]["draws"])
    rows["ridge_5shot"] = mean_std(few_ridge["test_top1_by_shots"][str(k)]["draws"])
    details["linear_5shot"], details["ridge_5shot"] = few_lbfgs, few_ridge
    shot_runs = []
    for idx in support_sets(dataset.train_labels, k, draws, s["seed"]):
        shot_runs.append(
            evaluation.finetune(
                encoder,
                dataset.train_images[idx],
                dataset.train_labels[idx],
                dataset.test_images,
                dataset.test_labels,
                batch_size=len(idx),  # full batch: the support set is tiny
                seed=s["seed"],
                **s["finetune_shots"],
            )
        )
    rows["finetune_5shot"] = mean_std([r["test_top1"] for r in shot_runs])
    details["finetune_5shot"] = shot_runs[0]["settings"]
    return {"rows": rows, "details": details}


def compare(workdirs, dataset_name=None, classes=None, settings=None) -> dict:
    """The table's numbers for each run in ``workdirs`` and the first run's random init."""
    settings = {**default_settings(), **(settings or {})}
    encoders = {}
    for workdir in workdirs:
        encoders[os.path.basename(os.path.normpath(workdir))] = load_encoder(workdir)
    first = next(iter(encoders.values()))
    encoders["random_init"] = random_encoder(first.config, first.run_spec)
    dataset = load_dataset(dataset_name or first.config.dataset)
    if classes:
        dataset = class_subset(dataset, classes)
    columns = {}
    for name, encoder in encoders.items():
        start = time.perf_counter()
        columns[name] = measure(encoder, dataset, settings)
        columns[name]["seconds"] = time.perf_counter() - start
    return {
        "dataset": repr(dataset),
        "classes": list(classes) if classes else "all",
        "runs": {name: getattr(e, "step", None) for name, e in encoders.items()},
        "settings": settings,
        "columns": columns,
    }


def findings(report) -> list[str]:
    """The three claims of docs/evaluation.md, checked on the measured numbers."""
    cols = report["columns"]
    trained = [c for c in cols if c != "random_init"]
    value = lambda col, row: cols[col]["rows"][row]["mean"]
    lines = []
    for col in trained:
        beaten = [r for r in ROWS if value(col, r) <= value("random_init", r)]
        lines.append(
            f"{col} beats random init under every protocol"
            if not beaten
            else f"{col} does not beat random init under: {', '.join(beaten)}"
        )
        full = value(col, "finetune_all") - value(col, "linear_all")
        shots = value(col, "linear_5shot") - value(col, "finetune_5shot")
        lines.append(
            f"{col}: all labels, fine-tuning − linear probe = {100 * full:+.1f} points; "
            f"5 labels/class, linear (L-BFGS) − fine-tuning = {100 * shots:+.1f} points"
        )
    return lines


def markdown_table(report) -> str:
    cols = list(report["columns"])
    lines = [
        f"{report['dataset']}, classes {report['classes']}",
        "",
        "| held-out accuracy | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for row in ROWS:
        cells = []
        for col in cols:
            r = report["columns"][col]["rows"][row]
            spread = f" ± {r['std']:.3f}" if len(r["values"]) > 1 else ""
            cells.append(f"{r['mean']:.3f}{spread}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + [f"- {line}" for line in findings(report)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", action="append", required=True, help="a trained run")
    parser.add_argument("--dataset", help="dataset name (default: the first run's)")
    parser.add_argument("--classes", help="comma-separated classes to evaluate on (transfer)")
    parser.add_argument("--output", help="markdown file (default: FIRST_RUN/eval/protocols.md)")
    parser.add_argument("--draws", type=int, default=3)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    classes = [int(c) for c in args.classes.split(",")] if args.classes else None
    report = compare(args.workdir, args.dataset, classes, {"draws": args.draws})
    table = markdown_table(report)
    output = args.output or os.path.join(args.workdir[0], "eval", "protocols.md")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        f.write(table + "\n")
    with open(os.path.splitext(output)[0] + ".json", "w") as f:
        json.dump(to_json(report), f, indent=2)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
