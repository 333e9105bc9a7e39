"""Tiny configs for tests, importable by config files that test subprocesses load.

Kept apart from conftest.py, whose import sets XLA_FLAGS for the test session itself.
"""

import importlib.util
import os

import ml_collections

from ssl_jax.config import base_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# LLVM optimisation level 1 for the suite's programs: compilation, which dominates the tiny
# runs of the tests, takes about half as long as at XLA's default (3) on CPU, and the step
# rate of the small CNNs is unchanged. Level 0 would compile faster still but changes the
# float32 results visibly. Benchmarks and user runs keep XLA's default.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=1"


def xla_flags(num_devices: int) -> str:
    """``XLA_FLAGS`` for a test process with ``num_devices`` fake CPU devices."""
    return f"--xla_force_host_platform_device_count={num_devices} {TEST_XLA_FLAGS}"


def load_experiment(name: str):
    """The script ``experiments/<name>.py`` as a module (experiments/ is not a package)."""
    path = os.path.join(REPO, "experiments", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(objective: str = "simclr", **objective_fields) -> ml_collections.ConfigDict:
    """A config small enough to compile and run in seconds: 8×8 digits, a 2-stage CNN."""
    from ssl_jax import augment

    c = base_config()
    c.dataset = "digits"
    c.batch_size = 32
    c.num_steps = 6
    c.log_every = 2
    c.checkpoint_every = 3
    c.num_devices = 1
    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(8, 16), convs_per_stage=1, pool="flatten")
    )
    if objective == "linear_autoencoder":  # an affine code is the method
        c.model = ml_collections.ConfigDict(dict(name="linear", features=8))
    fields = {
        "simclr": dict(temperature=0.2, projector=dict(hidden_dims=(32,), output_dim=16)),
        "autoencoder": dict(code_dim=8, decoder_hidden_dims=(32,), reconstruction="bernoulli"),
        "toy_ema_queue": dict(dim=8, queue_size=96, temperature=0.2, momentum=0.9),
        "toy_alternating": {},
        "toy_nan_after": dict(nan_from_step=4),
        "toy_multimodal": {},
        "toy_no_loss_metric": dict(
            code_dim=8, decoder_hidden_dims=(32,), reconstruction="bernoulli"
        ),
        "toy_slow": dict(
            temperature=0.2, projector=dict(hidden_dims=(32,), output_dim=16), pause_sec=0.25
        ),
    }.get(objective)
    if fields is None:  # any other objective: its DEFAULTS with tiny heads
        fields = tiny_fields(objective)
    fields.update(objective_fields)
    if objective.startswith("toy_"):
        fields["module"] = "tests.toy_objectives"
    c.objective = ml_collections.ConfigDict(dict(name=objective, **fields))
    c.aug = augment.default_config()
    c.aug.global_scale = (0.5, 1.0)
    # Views by random crops only: colour jitter, greyscale and blur are left out of the
    # program (probability 0 removes an op statically), which halves the augmentation's
    # compile time; tests/test_augment.py tests them.
    c.aug.flip_prob = c.aug.jitter_prob = c.aug.grayscale_prob = c.aug.blur_prob = 0.0
    c.readout.enabled = False
    return c


def tiny_fields(objective: str) -> dict:
    """Objective ``objective``'s DEFAULTS with every head (a block with ``hidden_dims`` and
    ``output_dim``) shrunk to 32 → 16, and any queue to 64 keys."""
    from ssl_jax.config import objective_defaults

    fields = objective_defaults(objective)
    for name, value in fields.items():
        if isinstance(value, dict) and {"hidden_dims", "output_dim"} <= set(value):
            fields[name] = {**value, "hidden_dims": (32,), "output_dim": 16}
    if "queue_size" in fields:
        fields["queue_size"] = 64
    return fields


def traced_layers(model, image_shape, batch: int = 2):
    """``(features, {layer: ShapeDtypeStruct}, layer names in network order)`` of an encoder
    traced abstractly on a batch of ``image_shape`` images: nothing is compiled or run. The
    order is read while tracing, since a pytree's dicts come back sorted."""
    import jax
    import jax.numpy as jnp

    images = jax.ShapeDtypeStruct((batch, *image_shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(1), x, train=False), images)
    order = []

    def apply(v, x):
        features, layers = model.apply(v, x, train=False, return_layers=True)
        order.extend(layers)
        return features, layers

    features, layers = jax.eval_shape(apply, variables, images)
    return features, layers, order
