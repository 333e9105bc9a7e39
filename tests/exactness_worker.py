"""Trains tiny configs in the float64 exactness mode and saves every final state leaf.

    python -m tests.exactness_worker OUT.npz --objectives simclr,autoencoder --devices 1,8
        [--seeds 0,1,2] [--steps 20] [--coordinator HOST:PORT --num_processes 2 --process_id I]

Run by tests/test_exactness.py in subprocesses of their own: the 64-bit mode is global to a
process. Each (objective, device count, seed) run takes ``steps`` AdamW steps of
`tests.configs.tiny_config` on the real digits (`exactness_config`: other data where the
objective needs it); the step program is compiled once per objective
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


# Objectives whose tiny config needs other data or smaller parts than `tiny_config` gives.
COLOUR = ("colorization", "split_brain")
TINY_FIELDS = {
    "colorization": dict(downsample=4),
    "split_brain": dict(downsample=4),
    "cpc_grid": dict(patch_size=4, patch_stride=2, prediction_steps=1, context_dim=16),
    "cycle_gan": dict(
        generator_widths=(8, 16),
        residual_blocks=1,
        discriminator_widths=(16, 32),
        domains="inverted",
    ),
    "context_encoder": dict(decoder_width=16, discriminator_widths=(16, 32)),
}


def exactness_config(objective: str):
    """`tiny_config`, with the data and the parts each objective needs (text: BERT's tiny
    Transformer on ``lee``; colour: ``photo_patches``)."""
    if objective == "bert_mlm":
        from tests.test_bert_mlm import bert_config

        config = bert_config()
        config.batch_size = 16
        config.readout.enabled = False
        return config
    if objective == "clip":  # the digits with captions from their labels, as an .npz
        import os
        import tempfile

        from ssl_jax.data.captions import add_captions
        from tests.test_clip import TEXT_MODEL

        data = add_captions(load_dataset("digits"), "digits_captions")
        path = os.path.join(tempfile.mkdtemp(prefix="exactness_clip_"), "captions.npz")
        names = ("images", "tokens", "labels")
        np.savez(path, **{k: np.concatenate([data.train[k], data.test[k]]) for k in names})
        config = tiny_config("clip", embed_dim=16, text_model=TEXT_MODEL, augment=False)
        config.dataset = f"npz:{path}"
        return config
    if objective == "beit":
        # The tokenizer is frozen and the worker builds the state without `init_from`, so it
        # keeps its random initialisation: fixed codes all the same, on every device count.
        from tests.test_beit import beit_config

        config = beit_config("unused-tokenizer-workdir")
        config.batch_size = 32
        config.readout.enabled = False
        return config
    if objective == "imagegpt":
        from tests.test_imagegpt import igpt_config

        return igpt_config()
    if objective == "content_style_categorical":  # the style one of 8 categories
        config = tiny_config("content_style", style_categories=8)
        config.dataset = "glyphs"
        return config
    config = tiny_config(objective, **TINY_FIELDS.get(objective, {}))
    if objective in COLOUR:
        config.dataset = "photo_patches"
    if objective == "content_style":
        config.dataset = "glyphs"
    return config


def run(objective: str, num_devices: int, seed: int, steps: int, datasets: dict) -> dict:
    config = exactness_config(objective)
    if config.dataset not in datasets:
        datasets[config.dataset] = load_dataset(config.dataset)
    dataset = datasets[config.dataset]
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
    datasets = {}
    results = {}
    for objective in args.objectives.split(","):
        for devices in map(int, args.devices.split(",")):
            for seed in map(int, args.seeds.split(",")):
                leaves = run(objective, devices, seed, args.steps, datasets)
                tag = f"{objective}|{devices or jax.device_count()}|{seed}"
                results.update({f"{tag}|{name}": value for name, value in leaves.items()})
    if jax.process_index() == 0:
        np.savez(args.out, **results)


if __name__ == "__main__":
    main()
