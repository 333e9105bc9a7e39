"""Configs: Python files with ``get_config()``, command-line overrides, and their JSON form.

An experiment config is an ``ml_collections.ConfigDict`` built on `base_config()`, which holds
the trainer's settings; the experiment adds ``dataset``, ``model``, ``objective``, ``aug`` and
``optim``. Overrides name any existing field by its dotted path: ``optim.lr=0.3``.

Switching a family by name (``model.name=vit_tiny``, ``objective.name=autoencoder``) replaces
the whole block with that model's or objective's defaults (`block_defaults`), the way one flag
switches a model in big_vision or solo-learn; the fields of the old block the new one lacks
are reported and dropped. Name switches are applied before the other overrides, so the same
command line can then set the new block's fields: ``model.name=vit_tiny model.patch_size=4``.
"""

import ast
import copy
import dataclasses
import importlib
import importlib.util
import json
import os
import sys
import traceback

import ml_collections

from ssl_jax.errors import UserError, close_matches, unknown_name


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
            end_lr_fraction=0.0,  # the decay ends at lr·end_lr_fraction
            decay="cosine",  # cosine | linear: the shape of the decay after warmup
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
            # Captions → ``tokens`` (image-text data such as coco_captions): the text feature,
            # "" for the first of captions/text, captions, caption, text; ids per caption.
            text_feature="",
            text_length=77,
            # More ClassLabel features read as labels (the readout probes each):
            # "ARRAY=FEATURE" or "FEATURE", e.g. ("labels=label_shape", "hue=label_object_hue").
            label_features=(),
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
            # Read out the no-learning baseline too (pixels; MFCCs for audio).
            baseline=True,
            batch_size=500,
            # The readout holds its examples, and their pixels as float32 for the pixel
            # baseline, in memory: at most this many of each split (TFDS: the first, its
            # files being shuffled; in-memory data: a fixed random sample). All of
            # CIFAR-10; for ImageNet at 224×224 (600 KB of float32 pixels an image) lower them.
            max_train_examples=50_000,
            max_heldout_examples=10_000,
        )
    )
    return c


def mnist_config(objective: str, num_steps: int = 500, **objective_fields):
    """A multi-view method on the 5,000-image MNIST subset, set up as the main job
    (experiments/simclr_mnist.py): the small CNN, batch 256, AdamW 2e-3, views for digits
    (milder crops, no flips, colour or blur). The objective block is its module's
    ``DEFAULTS`` updated with ``objective_fields``."""
    from ssl_jax import augment

    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 256
    c.num_steps = num_steps
    c.log_every = 25
    c.checkpoint_every = num_steps
    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="flatten")
    )
    c.objective = ml_collections.ConfigDict(
        dict(name=objective, **{**objective_defaults(objective), **objective_fields})
    )
    # A mirrored 2 is not a 2; grey digits have no colour to jitter but brightness/contrast.
    c.aug = augment.default_config()
    c.aug.global_scale = (0.5, 1.0)
    c.aug.flip_prob = 0.0
    c.aug.grayscale_prob = 0.0
    c.aug.blur_prob = 0.0
    c.aug.jitter_prob = 0.8
    c.aug.brightness = 0.4
    c.aug.contrast = 0.4
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.warmup_steps = 50
    c.optim.weight_decay = 1e-4
    return c


def cifar10_config(objective: str, epochs: int = 1000, **objective_fields):
    """A multi-view method on CIFAR-10 through TFDS, scaled to CIFAR as solo-learn does:
    ResNet-18 with the CIFAR stem, batch 256, ``epochs`` passes over the 50,000 training
    images, the paper's augmentations at 32×32 (blur off: it blurs away a 32×32 image). The
    objective block is its module's ``DEFAULTS`` updated with ``objective_fields``; the
    caller sets the optimizer to its paper's."""
    from ssl_jax import augment

    c = base_config()
    c.dataset = "tfds:cifar10"
    c.batch_size = 256
    c.num_steps = epochs * 50_000 // c.batch_size
    c.log_every = 100
    c.checkpoint_every = 5000
    c.model = ml_collections.ConfigDict(dict(name="resnet18", stem="cifar"))
    c.objective = ml_collections.ConfigDict(
        dict(name=objective, **{**objective_defaults(objective), **objective_fields})
    )
    c.aug = augment.default_config()
    c.aug.blur_prob = 0.0
    c.aug.jitter_prob = 0.8
    c.optim.warmup_steps = 10 * 50_000 // c.batch_size
    return c


def load_config(path: str) -> ml_collections.ConfigDict:
    """Imports a config file and returns its ``get_config()``.

    A config file is the user's code: its mistakes (a syntax error, an exception in
    ``get_config()``) are reported as one line naming the file's line, not as a traceback.
    """
    if os.path.isdir(path):
        raise UserError(
            f"config {path!r} is a directory; pass a config file, e.g. "
            "--config experiments/simclr_mnist.py."
        )
    if not os.path.isfile(path):
        raise UserError(
            f"config file {path!r} does not exist; pass e.g. experiments/simclr_mnist.py."
        )
    spec = importlib.util.spec_from_file_location("ssl_jax_experiment_config", path)
    if spec is None:
        raise UserError(f"config file {path!r} is not a Python file; pass a .py config.")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise UserError(
            f"config file {path!r} has a syntax error at line {err.lineno}: {err.msg}; "
            "fix the file."
        ) from None
    except Exception as err:  # noqa: BLE001 - the config file is the user's code
        raise _config_code_error(path, "importing it", err) from None
    if not hasattr(module, "get_config"):
        raise UserError(f"config file {path!r} has no get_config() function.")
    try:
        config = module.get_config()
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - the config file is the user's code
        raise _config_code_error(path, "get_config()", err) from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise UserError(
            f"get_config() of {path!r} returned a {type(config).__name__}; it must return an "
            "ml_collections.ConfigDict (start from ssl_jax.config.base_config())."
        )
    return config


def _config_code_error(path: str, where: str, err: Exception) -> UserError:
    """One line for an exception raised by a config file's code, naming the file's line."""
    line = ""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if os.path.abspath(frame.filename) == os.path.abspath(path):
            line = f" (line {frame.lineno}: {frame.line})"
            break
    message = str(err).splitlines()[0] if str(err) else ""
    return UserError(
        f"config file {path!r} failed in {where}: {type(err).__name__}: {message}{line}; "
        "fix the file."
    )


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


def apply_overrides(config: ml_collections.ConfigDict, overrides) -> list[str]:
    """Applies ``dotted.path=value`` overrides in place: name switches first, then the others in
    the order given. Returns the notes to print (what a name switch replaced)."""
    switches = [o for o in overrides if _switched_block(o) is not None]
    notes = []
    for override in switches + [o for o in overrides if o not in switches]:
        note = apply_override(config, override)
        if note:
            notes.append(note)
    return notes


# The blocks whose ``name`` picks a family with its own fields.
SWITCHABLE_BLOCKS = ("model", "objective")


def _switched_block(override: str) -> str | None:
    path = override.split("=", 1)[0]
    block, _, leaf = path.partition(".")
    return block if block in SWITCHABLE_BLOCKS and leaf == "name" else None


def apply_override(config: ml_collections.ConfigDict, override: str) -> str | None:
    """Applies one ``dotted.path=value`` override in place.

    ``model.name`` and ``objective.name`` switch the block to the new name's defaults (see
    `switch_block`); they return a note of what was replaced. Other overrides return None.
    """
    if "=" not in override:
        raise UserError(f"override {override!r} has no value; write --config.{override}=VALUE.")
    path, text = override.split("=", 1)
    block = _switched_block(override)
    if block is not None and block in config:
        return switch_block(config, block, text)
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
    return None


def switch_block(config: ml_collections.ConfigDict, block: str, name: str) -> str | None:
    """Replaces ``config[block]`` by the defaults of ``name``; a note of what it dropped.

    Fields of the old block that the new one also has take the new defaults too (the old values
    were chosen for the old family); set them on the same command line to change them.
    """
    old = config[block].to_dict()
    if old.get("name") == name:
        return None
    defaults = block_defaults(block, name)
    with config.ignore_type():
        config[block] = ml_collections.ConfigDict(defaults)
    dropped = [k for k in old if k != "name" and k not in defaults]
    reset = [k for k in old if k != "name" and k in defaults and old[k] != defaults[k]]
    note = f"config: {block}.name {old.get('name')!r} → {name!r}: {name}'s defaults"
    if dropped:
        note += f"; dropped {', '.join(dropped)} (not {name} settings)"
    if reset:
        note += f"; reset {', '.join(f'{k}={defaults[k]!r}' for k in reset)}"
    if block == "objective" and "aug" not in config:
        # Objectives that make views read config.aug; a config written for one that does not
        # (the autoencoder, word2vec) gets SimCLR's default views, settable on the same line.
        from ssl_jax import augment

        config.aug = augment.default_config()
        note += "; added the default aug block"
    return note + "."


def block_defaults(block: str, name: str) -> dict:
    """The default config block of model or objective ``name``, with its name."""
    if block == "model":
        return {"name": name, **model_defaults(name)}
    return {"name": name, **objective_defaults(name)}


def model_defaults(name: str) -> dict:
    """The constructor fields' defaults of encoder ``name`` (ssl_jax.models.ENCODERS), less the
    settings its name fixes and those filled from the data (a token encoder's vocab_size)."""
    from ssl_jax.models import ENCODERS

    if name not in ENCODERS:
        raise unknown_name("model", name, ENCODERS)
    module_class, fixed = ENCODERS[name]
    from_data = ("vocab_size",)
    defaults = {}
    for field in dataclasses.fields(module_class):
        if field.name in ("parent", "name", "dtype", *fixed, *from_data):
            continue
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
    return defaults


def objective_defaults(name: str) -> dict:
    """The ``DEFAULTS`` dict of objective ``name``'s module (ssl_jax/objectives/<name>.py)."""
    from ssl_jax.objectives import get_factory

    factory = get_factory(ml_collections.ConfigDict({"objective": {"name": name}}))
    defaults = getattr(sys.modules[factory.__module__], "DEFAULTS", None)
    if defaults is None:
        raise UserError(
            f"objective {name!r} ({factory.__module__}) has no DEFAULTS to switch to; "
            "write its fields in the config file instead."
        )
    return copy.deepcopy(dict(defaults))


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
    """A run's ``config.json``; fields added to ssl_jax since it was saved take their defaults
    (in ``optim`` and in each parameter group's block of ``optim_groups`` alike)."""
    with open(path) as f:
        saved = json.load(f)
    defaults = to_dict(base_config())
    merged = with_defaults(saved, defaults)
    groups = merged.get("optim_groups")
    if isinstance(groups, dict):
        merged["optim_groups"] = {
            group: with_defaults(block, defaults["optim"]) if isinstance(block, dict) else block
            for group, block in groups.items()
        }
    return merged


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


# Sizes and counts that must be whole numbers ≥ 1 (or ≥ 0): checked before anything runs, so
# a typo fails in a second with the fix rather than as a traceback, or as a run that trains
# nothing. num_steps=0 is refused too: the random-init encoder is what
# ``python -m ssl_jax.evaluate --checkpoint random:CONFIG`` evaluates.
POSITIVE_FIELDS = (
    "batch_size",
    "num_steps",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    "readout.batch_size",
    "readout.knn_k",
    "readout.max_train_examples",
    "readout.max_heldout_examples",
)
NON_NEGATIVE_FIELDS = ("num_devices", "optim.warmup_steps", "data.image_size", "data.worker_count")


def _field(config, path: str):
    value = config
    for part in path.split("."):
        if not isinstance(value, ml_collections.ConfigDict) or part not in value:
            return None
        value = value[part]
    return value


def check_config(config) -> None:
    """Refuses sizes and counts that cannot work (zero or negative batch, steps, cadences)."""
    defaults = base_config()
    for path, least in [(p, 1) for p in POSITIVE_FIELDS] + [(p, 0) for p in NON_NEGATIVE_FIELDS]:
        value = _field(config, path)
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and value >= least:
            continue
        kind = "a positive integer" if least else "an integer ≥ 0"
        hint = f"e.g. --config.{path}={_field(defaults, path)}"
        if path == "num_steps":
            hint += (
                "; for an untrained encoder, evaluate random:CONFIG with python -m ssl_jax.evaluate"
            )
        raise UserError(f"{path} must be {kind}, got {value!r}; set {hint}.")


# What --resume may change: fields that do not alter the steps already taken. num_steps and
# optim.lr change the learning-rate schedule from the resumed step on (a longer num_steps
# stretches the cosine decay, so the rate jumps up at the resumed step); logging, checkpoint
# cadence, the readout and the data readers' parallelism change nothing that was computed.
# Anything else (model, objective, data, batch size, seed, optimizer kind or its other
# settings) would make the checkpoint a different run's, and stays refused.
RESUME_MAY_CHANGE = (
    "num_steps",
    "optim.lr",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    "readout",
    "data.worker_count",
    "data.read_threads",
    "data.prefetch_batches",
)


def resume_may_change(path: str) -> bool:
    return any(path == f or path.startswith(f + ".") for f in RESUME_MAY_CHANGE)


def value_at(config: dict, path: str):
    """The value of dotted ``path`` in a config dict ("<missing>" when it is absent)."""
    value = config
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return "<missing>"
        value = value[part]
    return value
