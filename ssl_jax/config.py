"""Configs: Python files with ``get_config()``, command-line overrides, and their JSON form.

An experiment config is an ``ml_collections.ConfigDict`` built on `base_config()`, which holds
the trainer's settings; the experiment adds ``dataset``, ``model``, ``objective``, ``aug`` and
``optim``. Overrides name any existing field by its dotted path: ``optim.lr=0.3``.
"""

import ast
import importlib.util
import json
import os

import ml_collections

from ssl_jax.errors import UserError, close_matches


def base_config() -> ml_collections.ConfigDict:
    """The trainer's settings, shared by every experiment."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.dataset = "mnist_subset"
    c.batch_size = 256  # global batch, split over all devices
    c.num_steps = 1000
    c.num_devices = 0  # 0: every device of every process
    c.compute_dtype = "float32"  # or "bfloat16": activations; params and losses stay float32
    c.log_every = 50
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.optim = ml_collections.ConfigDict(
        dict(
            name="adamw",  # sgd | adamw | lars
            lr=1e-3,  # base learning rate, scaled by lr_scaling
            lr_scaling="none",  # none | linear (lr·B/256) | sqrt (lr·sqrt(B/256))
            warmup_steps=0,
            end_lr_fraction=0.0,  # cosine decay ends at lr·end_lr_fraction
            weight_decay=0.0,  # not applied to biases and normalisation parameters
            momentum=0.9,  # sgd and lars
            b1=0.9,
            b2=0.999,
            clip_norm=0.0,  # 0: no clipping; else clip the global gradient norm
        )
    )
    # How a TFDS dataset (dataset="tfds:NAME[:SPLIT]") is read; in-memory datasets ignore it.
    c.data = ml_collections.ConfigDict(
        dict(
            image_size=0,  # resize (shorter side, centre crop) on the host; 0: stored size
            data_dir="",  # the prepared data; "": $TFDS_DATA_DIR, else ~/tensorflow_datasets
            heldout_split="",  # split for the readout; "": test, else validation
            worker_count=0,  # grain worker processes that decode; 0: reader threads only
            read_threads=4,  # reader threads (in each worker when worker_count > 0)
            prefetch_batches=4,  # batches read ahead (per worker when worker_count > 0)
        )
    )
    # Initialise modules from another run's checkpoint (stacked autoencoders, a frozen
    # tokenizer, fine-tuning): ``modules`` names them, or maps ``"this=source"``; ``step`` 0 is
    # that run's latest checkpoint; ``frozen`` keeps them fixed (no gradient, no optimizer
    # state, batch statistics as loaded).
    c.init_from = ml_collections.ConfigDict(dict(workdir="", step=0, modules=(), frozen=False))
    c.readout = ml_collections.ConfigDict(
        dict(
            enabled=True,
            knn_k=20,
            knn_temperature=0.07,
            # The linear probe's λ grid; (): its full default, 1e6 … 1e-6 (ssl_jax.evaluation).
            # A shorter grid near the usual optimum (1e0 … 1e-4) makes a quick readout.
            l2_grid=(),
            batch_size=500,
            # The readout holds its examples, and their pixels as float32 for the pixel
            # baseline, in memory: at most this many from the start of each split. All of
            # CIFAR-10; for ImageNet at 224×224 (600 KB of float32 pixels an image) lower them.
            max_train_examples=50_000,
            max_heldout_examples=10_000,
        )
    )
    return c


def load_config(path: str) -> ml_collections.ConfigDict:
    """Imports a config file and returns its ``get_config()``."""
    if not os.path.isfile(path):
        raise UserError(
            f"config file {path!r} does not exist; pass e.g. experiments/simclr_mnist.py."
        )
    spec = importlib.util.spec_from_file_location("ssl_jax_experiment_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise UserError(f"config file {path!r} has no get_config() function.")
    return module.get_config()


def _parse_value(text: str, current):
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
    elif (
        isinstance(current, float)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return float(value)
    elif isinstance(current, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(current, tuple | list) and isinstance(value, tuple | list):
        return type(current)(value)
    elif current is None:
        return value
    if type(value) is not type(current):
        raise UserError(
            f"cannot use {text!r} for a field of type {type(current).__name__}; "
            f"give a {type(current).__name__} like {current!r}."
        )
    return value


def apply_override(config: ml_collections.ConfigDict, override: str) -> None:
    """Applies one ``dotted.path=value`` override in place."""
    if "=" not in override:
        raise UserError(f"override {override!r} has no value; write --config.{override}=VALUE.")
    path, text = override.split("=", 1)
    parts = path.split(".")
    parent = config
    for depth, part in enumerate(parts):
        if not isinstance(parent, ml_collections.ConfigDict) or part not in parent:
            keys = list(parent.keys()) if isinstance(parent, ml_collections.ConfigDict) else []
            where = ".".join(parts[:depth]) or "the config"
            raise UserError(
                f"unknown config key {path!r}: {where} has no field {part!r}."
                f"{close_matches(part, keys)}"
            )
        if depth < len(parts) - 1:
            parent = parent[part]
    leaf = parts[-1]
    value = _parse_value(text, parent[leaf])
    with parent.ignore_type():
        parent[leaf] = value


def to_dict(config) -> dict:
    """The config as plain JSON-compatible Python (tuples become lists)."""
    return json.loads(json.dumps(config.to_dict(), default=list))


def with_defaults(saved: dict, defaults: dict) -> dict:
    """``saved`` with the fields it lacks taken from ``defaults``, recursively.

    A run saved before a field existed ran as that field's default says, so resuming it
    with the default is the same run.
    """
    merged = dict(saved)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = with_defaults(merged[key], value)
    return merged


def read_saved_config(path: str) -> dict:
    """A run's ``config.json``; fields added to ssl_jax since it was saved take their defaults."""
    with open(path) as f:
        return with_defaults(json.load(f), to_dict(base_config()))


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted paths of the fields that differ between two config dicts."""
    keys = sorted(set(a) | set(b))
    diffs = []
    for key in keys:
        path = f"{prefix}{key}"
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += config_differences(va, vb, prefix=f"{path}.")
        elif va != vb:
            diffs.append(path)
    return diffs
