"""Trained encoders for downstream use: `load_encoder` and batched feature extraction."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax.checkpoint import Checkpoints
from ssl_jax.config import read_saved_config
from ssl_jax.data.pipeline import to_float_images
from ssl_jax.errors import UserError
from ssl_jax.models import build_encoder


def encoder_variables(params: dict, batch_stats: dict) -> dict:
    """The ``encoder`` module's variables out of a train state's params and batch stats."""
    return {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}


def batched_apply(fn, images: np.ndarray, batch_size: int):
    """Applies ``fn`` to fixed-size batches (the last one padded), so it compiles once.

    ``fn`` maps a [batch_size, H, W, C] array to a pytree of [batch_size, ...] arrays; the
    results are concatenated on the host and the padding dropped.
    """
    n = len(images)
    outputs = []
    for start in range(0, n, batch_size):
        chunk = images[start : start + batch_size]
        pad = batch_size - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        outputs.append(jax.device_get(fn(chunk)))
    return jax.tree.map(lambda *parts: np.concatenate(parts)[:n], *outputs)


def make_embed_fn(encoder):
    """Jitted ``(variables, images) -> features`` in inference mode (batch norm running stats)."""

    @jax.jit
    def embed(variables, images):
        return encoder.apply(variables, to_float_images(images), train=False).astype(jnp.float32)

    return embed


def make_layers_fn(encoder):
    """``(variables, images) -> {layer name: activation}`` in inference mode, in network order.

    The jitted part returns a list (JAX would sort a dict's keys); the names, recorded when it
    is traced, are zipped back on the host.
    """
    names = []

    @jax.jit
    def layer_values(variables, images):
        _, named = encoder.apply(
            variables, to_float_images(images), train=False, return_layers=True
        )
        names[:] = list(named)
        return [x.astype(jnp.float32) for x in named.values()]

    def layers(variables, images, batch_size):
        values = batched_apply(lambda x: layer_values(variables, x), images, batch_size)
        return dict(zip(names, values, strict=True))

    return layers


class Encoder:
    """A trained encoder: ``embed(images) -> [N, D]`` and ``layers(images) -> {name: array}``.

    ``images`` are float32 NHWC in [0, 1] (uint8 in [0, 255] is accepted too), processed in
    batches of ``batch_size`` with batch norm in inference mode.
    """

    def __init__(self, module, variables, image_shape, config=None, step=None, batch_size=256):
        self.module = module
        self.variables = variables
        self.image_shape = tuple(image_shape)
        self.config = config
        self.step = step
        self.batch_size = batch_size
        self._embed = make_embed_fn(module)
        self._layers = make_layers_fn(module)

    def __repr__(self) -> str:
        return (
            f"Encoder({type(self.module).__name__}, image_shape={self.image_shape}, "
            f"step={self.step})"
        )

    def _check(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 3 and self.image_shape[-1] == 1:
            images = images[..., None]
        if images.ndim != 4 or images.shape[1:] != self.image_shape:
            raise UserError(
                f"images have shape {images.shape}; this encoder takes (N, "
                f"{', '.join(map(str, self.image_shape))}) float32 arrays in [0, 1]."
            )
        if images.dtype != np.uint8:
            images = images.astype(np.float32)
            if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
                raise UserError("images must be finite and lie in [0, 1] (divide uint8 by 255).")
        return images

    def embed(self, images) -> np.ndarray:
        images = self._check(images)
        return batched_apply(lambda x: self._embed(self.variables, x), images, self.batch_size)

    def layers(self, images) -> dict:
        images = self._check(images)
        return self._layers(self.variables, images, self.batch_size)


def _find_run(path: str) -> tuple[str, str, int | None]:
    """(workdir holding config.json, checkpoints dir, step or None for the latest)."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise UserError(f"{path} does not exist; pass a training --workdir or its checkpoints/.")
    step = None
    if os.path.basename(path).isdigit() and os.path.isdir(path):
        step, path = int(os.path.basename(path)), os.path.dirname(path)
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return path, os.path.join(path, "checkpoints"), step
    parent = os.path.dirname(path)
    if os.path.exists(os.path.join(parent, "config.json")):
        return parent, path, step
    raise UserError(
        f"{path} is not an ssl_jax run: expected a workdir with config.json and checkpoints/."
    )


def load_encoder(path: str, step: int | None = None, batch_size: int = 256) -> Encoder:
    """Loads the encoder of a run from its workdir, its ``checkpoints/`` dir or one step's dir.

    The latest checkpoint is used unless ``step`` (or a step directory) says otherwise.
    """
    workdir, checkpoint_dir, path_step = _find_run(path)
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise UserError(f"{workdir} has no config.json; it is not an ssl_jax training workdir.")
    config = ml_collections.ConfigDict(read_saved_config(config_path))
    checkpoints = Checkpoints(checkpoint_dir, keep=config.keep_checkpoints)
    step = step if step is not None else path_step
    if step is None:
        step = checkpoints.latest_step()
    if step is None or step not in checkpoints.all_steps():
        available = checkpoints.all_steps() or "none"
        raise UserError(f"no checkpoint {step} in {checkpoint_dir} (available: {available}).")
    raw = checkpoints.restore_raw(step)
    checkpoints.close()
    with open(os.path.join(workdir, "run_info.json")) as f:
        image_shape = tuple(json.load(f)["image_shape"])
    module = build_encoder(config.model, image_shape, dtype=jnp.dtype(config.compute_dtype))
    variables = encoder_variables(raw["params"], raw["batch_stats"])
    return Encoder(module, variables, image_shape, config=config, step=step, batch_size=batch_size)
