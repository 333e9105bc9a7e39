"""Trains tiny configs in the float64 exactness mode and saves every final state leaf.

    python -m tests.exactness_worker OUT.npz --objectives simclr,autoencoder --devices 1,8
        [--seeds 0,1,2] [--steps 20] [--coordinator HOST:PORT --num_processes 2 --process_id I]

Run by tests/test_exactness.py in subprocesses of their own: the 64-bit mode is global to a
process. Each (objective, device count, seed) run takes ``steps`` AdamW steps of
`tests.configs.tiny_config` on the real digits; the step program is compiled once per objective
and device count and reused for every seed.
"""

import argparse
import functools

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import precision, train
from ssl_jax.data import load_dataset
from ssl_jax.data.spec import decoded_spec, sample_batch
from tests.configs import tiny_config


def local_value(x) -> np.ndarray:
    """A replicated array's value, read from this process's first shard."""
    return np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x)


def run(objective: str, num_devices: int, seed: int, steps: int, dataset) -> dict:
    config = tiny_config(objective)
    if "bank_size" in config.objective:  # a memory bank: one row per training example
        config.objective.bank_size = dataset.num_train_examples
    config.compute_dtype = "float64"
    config.seed = seed
    config.num_steps = steps
    config.num_devices = num_devices
    config.optim.name = "adamw"
    config.optim.lr = 1e-3
    mesh = train.make_mesh(num_devices)
    objective_, optimizers, schedules = train.build_objective(config, dataset.spec)
    init_fn, step_fn = compiled(objective_, optimizers, schedules, mesh)
    state = init_fn(sample_batch(decoded_spec(dataset.spec)), seed)
    data = dataset.train_batches(config.batch_size, seed, 0, NamedSharding(mesh, P("data")))
    losses = []
    for _ in range(steps):
        _, batch = next(data)
        state, metrics = step_fn(state, batch)
        losses.append(
            local_value(train.loss_values(metrics)[sorted(train.loss_values(metrics))[0]])
        )
    leaves = {"losses": np.array(losses)}
    for path, leaf in jax.tree_util.tree_leaves_with_path(state._asdict()):
        leaves[jax.tree_util.keystr(path)] = local_value(leaf)
    return leaves


_PROGRAMS = {}


def compiled(objective, optimizers, schedules, mesh):
    """The init and step programs of ``objective`` on ``mesh``, compiled once for all seeds
    (the seed is an argument of the init program, not a constant of it)."""
    key = (objective.name, mesh.size)
    if key not in _PROGRAMS:
        init = functools.partial(train.init_state, objective, optimizers)
        _PROGRAMS[key] = (
            jax.jit(
                lambda sample, seed: init(sample, seed=seed),
                out_shardings=NamedSharding(mesh, P()),
            ),
            train.compile_train_step(objective, optimizers, schedules, mesh),
        )
    return _PROGRAMS[key]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--objectives", default="simclr")
    parser.add_argument("--devices", default="1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--coordinator")
    parser.add_argument("--num_processes", type=int)
    parser.add_argument("--process_id", type=int)
    args = parser.parse_args()
    precision.configure("float64")
    if args.coordinator:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    dataset = load_dataset("digits")
    results = {}
    for objective in args.objectives.split(","):
        for devices in map(int, args.devices.split(",")):
            for seed in map(int, args.seeds.split(",")):
                leaves = run(objective, devices, seed, args.steps, dataset)
                tag = f"{objective}|{devices or jax.device_count()}|{seed}"
                results.update({f"{tag}|{name}": value for name, value in leaves.items()})
    if jax.process_index() == 0:
        np.savez(args.out, **results)


if __name__ == "__main__":
    main()
