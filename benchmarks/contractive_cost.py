"""What the contractive penalty costs: the autoencoder's training step on 28×28 digits with no
penalty, the exact Jacobian norm and its random-projection estimate, by code size.

    python benchmarks/contractive_cost.py [--batch 128] [--codes 16,64,256] [--projections 1,4]

The step is the real one (`ssl_jax.train.compile_train_step`) of experiments/autoencoder_mnist.py
with a CNN without batch norm (the penalty is per example). The exact norm takes one
reverse-mode pass per code unit; the estimate one forward-mode pass per random direction, so its
cost does not grow with the code. Prints a markdown table of the median step time over
``--repeats`` timed steps after compiling, and XLA's FLOP count of each compiled step.
"""

import argparse
import os
import time

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import train
from ssl_jax.config import load_config
from ssl_jax.data import load_dataset
from ssl_jax.data.spec import decoded_spec, sample_batch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def step_cost(config, dataset, repeats):
    mesh = train.make_mesh(1)
    objective, optimizers, schedules = train.build_objective(config, dataset.spec)
    state = train.init_state(
        objective, optimizers, sample_batch(decoded_spec(dataset.spec)), seed=0
    )
    state = jax.device_put(state, NamedSharding(mesh, P()))
    step = train.compile_train_step(objective, optimizers, schedules, mesh)
    batches = dataset.train_batches(config.batch_size, 0, 0, NamedSharding(mesh, P("data")))
    _, batch = next(batches)
    lowered = step.lower(state, batch) if hasattr(step, "lower") else None
    cost = lowered.compile().cost_analysis() if lowered is not None else None
    if isinstance(cost, list):
        cost = cost[0]
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    state, metrics = step(state, batch)  # compile
    jax.block_until_ready(metrics)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), flops


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--codes", default="16,64,256")
    parser.add_argument("--projections", default="1,4")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    config = load_config(os.path.join(REPO, "experiments", "autoencoder_mnist.py"))
    config.batch_size = args.batch
    config.model = ml_collections.ConfigDict(
        dict(
            name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="avg", batch_norm=False
        )
    )
    dataset = load_dataset(config.dataset)
    print(f"{jax.devices()[0].device_kind}, batch {args.batch}, median of {args.repeats} steps\n")
    print("| code | penalty | step (ms) | × no penalty | GFLOP per step |")
    print("|---|---|---|---|---|")
    for code in (int(c) for c in args.codes.split(",")):
        variants = [("none", 0), ("exact", 0)]
        variants += [("projection", int(m)) for m in args.projections.split(",")]
        base = None
        for kind, m in variants:
            config.objective.update(
                code_dim=code,
                contraction=kind,
                contraction_weight=0.1 if kind != "none" else 0.0,
                contraction_projections=max(m, 1),
            )
            seconds, flops = step_cost(config, dataset, args.repeats)
            base = base or seconds
            label = {"none": "none", "exact": "exact"}.get(kind, f"projection, M = {m}")
            print(
                f"| {code} | {label} | {1e3 * seconds:.1f} | {seconds / base:.1f} | "
                f"{flops / 1e9:.2f} |"
            )


if __name__ == "__main__":
    main()
