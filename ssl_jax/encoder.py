"""Trained encoders for downstream use: `load_encoder` and batched feature extraction."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import precision
from ssl_jax.checkpoint import Checkpoints
from ssl_jax.config import read_saved_config
from ssl_jax.data.spec import ArraySpec, decode, decoded_spec, spec_from_json
from ssl_jax.errors import UserError, unknown_name
from ssl_jax.objectives import Representation, make_objective


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


def make_layers_fn(layers_of):
    """``(params, batch_stats, inputs, batch_size) -> {layer name: activation}`` in network
    order, from a representation's ``layers(params, batch_stats, inputs) -> dict``.

    The jitted part returns a list (JAX would sort a dict's keys); the names, recorded when it
    is traced, are zipped back on the host.
    """
    names = []

    @jax.jit
    def layer_values(params, batch_stats, inputs):
        named = layers_of(params, batch_stats, inputs)
        names[:] = list(named)
        return [x.astype(jnp.float32) for x in named.values()]

    def layers(params, batch_stats, inputs, batch_size):
        values = batched_apply(lambda x: layer_values(params, batch_stats, x), inputs, batch_size)
        return dict(zip(names, values, strict=True))

    return layers


class Encoder:
    """A trained representation: ``embed(inputs) -> [N, D]``, ``layers(inputs) -> {name: array}``.

    ``inputs`` are the representation's input (``input_name``): images float32 NHWC in [0, 1]
    (uint8 in [0, 255] is accepted too), token ids [N, L], or waveforms [N, T] (float in
    [-1, 1] or int16); they are processed in batches of ``batch_size``, in inference mode.
    """

    def __init__(
        self,
        representation: Representation,
        params: dict,
        batch_stats: dict,
        input_spec: ArraySpec,
        *,
        name: str = "encoder",
        input_name: str = "images",
        run_spec=None,
        config=None,
        step=None,
        batch_size=256,
    ):
        self.representation = representation
        self.params, self.batch_stats = params, batch_stats
        self.input_spec = input_spec
        self.name, self.input_name = name, input_name
        # The element spec of the data the run trained on (rebuilding its objective needs it).
        self.run_spec = run_spec if run_spec is not None else {input_name: input_spec}
        self.config, self.step, self.batch_size = config, step, batch_size
        self._embed = jax.jit(representation.fn)
        self._layers = None
        if representation.layers is not None:
            self._layers = make_layers_fn(representation.layers)

    @property
    def module(self):
        """The Linen module of a one-module representation (None otherwise)."""
        return self.representation.module

    @property
    def variables(self) -> dict:
        """``{"params", "batch_stats"}`` of a one-module representation's module."""
        (module,) = self.representation.modules
        return {"params": self.params[module], "batch_stats": self.batch_stats.get(module, {})}

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.input_spec.shape)

    def __repr__(self) -> str:
        return (
            f"Encoder({self.name!r}, input={self.input_name} {list(self.input_spec.shape)}, "
            f"step={self.step})"
        )

    def _check(self, inputs) -> np.ndarray:
        """The inputs as the representation takes them, decoded; a clear error otherwise."""
        spec, shape = self.input_spec, tuple(self.input_spec.shape)
        inputs = np.asarray(inputs)
        if spec.kind == "images" and inputs.ndim == len(shape) and shape[-1] == 1:
            inputs = inputs[..., None]
        if inputs.ndim != len(shape) + 1 or inputs.shape[1:] != shape:
            raise UserError(
                f"{self.input_name} have shape {inputs.shape}; this encoder takes (N, "
                f"{', '.join(map(str, shape))}) arrays{_RANGES.get(spec.kind, '')}."
            )
        if spec.kind == "images" and inputs.dtype != np.uint8:
            inputs = inputs.astype(np.float32)
            if not np.all(np.isfinite(inputs)) or inputs.min() < 0 or inputs.max() > 1:
                raise UserError("images must be finite and lie in [0, 1] (divide uint8 by 255).")
        if spec.kind == "audio" and inputs.dtype != np.int16:
            inputs = inputs.astype(np.float32)
            if not np.all(np.isfinite(inputs)) or np.abs(inputs).max() > 1:
                raise UserError("audio must be finite and lie in [-1, 1] (divide int16 by 32768).")
        # uint8 pixels and int16 samples decode by their stored dtype.
        stored = dataclasses.replace(spec, dtype=inputs.dtype.name)
        return decode(stored, inputs)

    def embed(self, inputs) -> np.ndarray:
        inputs = self._check(inputs)
        fn = lambda x: self._embed(self.params, self.batch_stats, x)
        return batched_apply(fn, inputs, self.batch_size)

    def layers(self, inputs) -> dict:
        if self._layers is None:
            raise UserError(f"representation {self.name!r} has no named layers; use embed().")
        inputs = self._check(inputs)
        return self._layers(self.params, self.batch_stats, inputs, self.batch_size)


_RANGES = {
    "images": " of float32 in [0, 1] or uint8",
    "audio": " of float32 in [-1, 1] or int16",
    "tokens": " of int32 token ids",
}


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


def read_input_spec(workdir: str) -> dict:
    """The element spec a run trained on, from its ``run_info.json`` (runs saved before named
    inputs recorded only their uint8 image shape)."""
    with open(os.path.join(workdir, "run_info.json")) as f:
        info = json.load(f)
    if "input_spec" in info:
        return spec_from_json(info["input_spec"])
    return {"images": ArraySpec(tuple(info["image_shape"]), "uint8", "images")}


def choose_representation(representations, name: str | None, where: str) -> str:
    """``name``, or the default: ``encoder`` when present, else the only one."""
    names = list(representations)
    if name is None:
        if "encoder" in representations or len(names) == 1:
            return "encoder" if "encoder" in representations else names[0]
        raise UserError(
            f"{where} has several representations ({', '.join(names)}); choose one with "
            "name=... (--representation on the command line)."
        )
    if name not in representations:
        raise unknown_name("representation", name, names)
    return name


def load_encoder(
    path: str, step: int | None = None, batch_size: int = 256, name: str | None = None
) -> Encoder:
    """Loads representation ``name`` of a run from its workdir, ``checkpoints/`` dir or one
    step's dir; ``name`` defaults to ``encoder`` (or the objective's only representation).

    The latest checkpoint is used unless ``step`` (or a step directory) says otherwise. Only
    the parameters the representation reads are restored, so damage elsewhere in the
    checkpoint (optimizer or objective state) does not stop it.
    """
    workdir, checkpoint_dir, path_step = _find_run(path)
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise UserError(f"{workdir} has no config.json; it is not an ssl_jax training workdir.")
    config = ml_collections.ConfigDict(read_saved_config(config_path))
    precision.configure(config.compute_dtype)  # a float64 run restores in float64
    input_spec = read_input_spec(workdir)
    objective = make_objective(config, decoded_spec(input_spec))
    name = choose_representation(objective.representations, name, workdir)
    representation = objective.representations[name]
    checkpoints = Checkpoints(checkpoint_dir, keep=config.keep_checkpoints, read_only=True)
    try:
        step = step if step is not None else path_step
        if step is None:
            step = checkpoints.latest_step()
        if step is None:
            raise UserError(
                f"{checkpoint_dir} holds no checkpoint yet; load it after the run's first save "
                "(every checkpoint_every steps)."
            )
        if step not in checkpoints.all_steps():
            available = checkpoints.all_steps() or "none"
            raise UserError(f"no checkpoint {step} in {checkpoint_dir} (available: {available}).")
        try:
            raw = checkpoints.restore_modules(step, representation.modules)
        except Exception as err:  # noqa: BLE001 - orbax/tensorstore raise many types
            others = [s for s in checkpoints.all_steps() if s != step]
            hint = (
                f"load another step: {os.path.join(checkpoint_dir, str(others[-1]))} "
                f"(step={others[-1]} in Python; available: {others})"
                if others
                else "the run has no other checkpoint to load"
            )
            raise UserError(
                f"checkpoint {os.path.join(checkpoint_dir, str(step))} is damaged: it cannot be "
                f"read for representation {name!r} ({type(err).__name__}); {hint}."
            ) from None
    finally:
        checkpoints.close()
    return Encoder(
        representation,
        raw["params"],
        raw["batch_stats"],
        input_spec[representation.input],
        name=name,
        input_name=representation.input,
        run_spec=input_spec,
        config=config,
        step=step,
        batch_size=batch_size,
    )
