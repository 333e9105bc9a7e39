"""The objective interface: what an objective gives the trainer.

An objective is a handful of pure functions over explicit pytrees, bundled in an `Objective`
(the same shape as an optax ``GradientTransformation``: data in, data out, nothing hidden). Its
factory is ``make(config, input_spec) -> Objective``, where ``input_spec`` is the dataset's
decoded element spec (`ssl_jax.data.spec`): ``{"images": ArraySpec((28, 28, 1), "float32",
"images"), "labels": ...}``, or ``tokens``, ``audio`` and further labels.

``init(key, sample_batch) -> (params, batch_stats, objective_state)``
    ``sample_batch`` is a batch of zeros shaped like the data (read its shapes, not values).
    ``params`` and ``batch_stats`` are dicts keyed by module name. ``objective_state`` is a
    typed ``NamedTuple`` of what the objective carries between steps — EMA target parameters,
    a queue of keys, a centre — or `NoState()`.

``loss(params, batch_stats, objective_state, batch, key, step, *, group) -> (loss, LossOutput)``
    ``batch`` holds the **global** batch of decoded named arrays (float32 images in [0, 1],
    int32 tokens, float32 audio in [-1, 1], int32 labels): the trainer jit-compiles the step
    over a device mesh in the global view, so a loss that mixes examples (negatives,
    cross-correlation, centring, queues) sees every device's examples without collectives.
    ``key`` is this step's PRNG key (augmentations, masks, noise); ``step`` the number of
    completed steps (an int32 scalar: schedules of temperatures, β or momentum). ``group``
    names the parameter group being differentiated (see ``param_groups``). ``metrics`` must
    hold ``"loss"`` (or names ending in ``loss``): the trainer stops a run whose loss is not
    finite.

``update_state(objective_state, params, outputs, step) -> objective_state``
    Called once per step after the optimizer updates, with the new ``params`` and the
    ``outputs`` the losses returned: an EMA step of a target network, a FIFO enqueue, a centre
    update. Nothing in it is differentiated.

``param_groups``: ``{group: (module names...)}``, updated one after the other in each step, each
    with its own optimizer (``config.optim_groups.<group>``, else ``config.optim``) and its own
    gradient of ``loss(..., group=group)`` with the other groups frozen; GANs use two groups.
    ``None`` means a single group ``"model"`` holding every module.

``representations``: ``{name: Representation}``, what can be read out of a trained run: a pure
    function ``(params, batch_stats, inputs) -> [N, D]`` of one named input, and the modules it
    reads. The readout, ``python -m ssl_jax.evaluate`` and ``ssl_jax.load_encoder(dir,
    name=...)`` use them. ``None`` means the one ``"encoder"`` module built from
    ``config.model`` reading ``images``.

``pictures``: for objectives that generate images, ``(params, batch_stats, images, key) ->
    {name: [rows, cols, H, W, C] in [0, 1]}`` made from held-out ``images`` in inference mode:
    reconstructions, samples, interpolations. The trainer saves them as PNG grids at the end
    of a run (`ssl_jax.pictures`). ``picture_inputs`` names the held-out arrays it is given:
    the first as ``images``, any others as keyword arguments of the same name (CycleGAN's
    ``images_b``).
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax

PyTree = Any


class LossOutput(NamedTuple):
    """What a loss returns beside its scalar value."""

    batch_stats: dict  # updated batch-norm statistics of the modules the loss ran in train mode
    metrics: dict  # scalars to log, e.g. {"loss": ..., "accuracy": ...}
    outputs: dict = {}  # arrays `update_state` needs (e.g. keys to enqueue)


class NoState(NamedTuple):
    """The objective state of objectives that carry nothing between steps."""


class Representation(NamedTuple):
    """A readable representation: ``fn(params, batch_stats, inputs) -> [N, D]`` float32.

    ``fn`` runs in inference mode (batch norm with its running averages) on the decoded input
    named ``input`` (``images`` [N, H, W, C], ``tokens`` [N, L], ``audio`` [N, T]) and reads only
    the parameters and statistics of ``modules``, so loading it restores just those.
    ``layers``, when given, is ``(params, batch_stats, inputs) -> {layer name: activation}`` in
    network order (similarity analysis, layer-wise probes). ``module``, for a representation
    that is one Linen module's output, is that module (fine-tuning trains it).
    """

    fn: Callable[..., jax.Array]
    input: str = "images"
    modules: tuple[str, ...] = ("encoder",)
    layers: Callable[..., dict] | None = None
    module: nn.Module | None = None


def keep_state(objective_state, params, outputs, step):
    """The default `update_state`: objectives without extra state keep it as it is."""
    del params, outputs, step
    return objective_state


@dataclasses.dataclass(frozen=True)
class Objective:
    name: str
    init: Callable[..., tuple[dict, dict, PyTree]]
    loss: Callable[..., tuple[jax.Array, LossOutput]]
    update_state: Callable[..., PyTree] = keep_state
    param_groups: Mapping[str, tuple[str, ...]] | None = None
    representations: Mapping[str, Representation] | None = None
    pictures: Callable[..., dict] | None = None
    picture_inputs: tuple[str, ...] = ("images",)


def module_representation(module: nn.Module, name: str = "encoder", input: str = "images"):
    """The `Representation` of Linen module ``name`` applied to ``input`` in inference mode.

    ``module(x, train=False)`` must return [N, ...] features (flattened to [N, D]); when it also
    takes ``return_layers=True`` (every ssl_jax encoder does), its named layers are readable.
    """

    def variables(params, batch_stats):
        return {"params": params[name], "batch_stats": batch_stats.get(name, {})}

    def fn(params, batch_stats, inputs):
        out = module.apply(variables(params, batch_stats), inputs, train=False)
        return out.reshape(out.shape[0], -1).astype(jax.numpy.float32)

    def layers(params, batch_stats, inputs):
        _, named = module.apply(
            variables(params, batch_stats), inputs, train=False, return_layers=True
        )
        return named

    return Representation(fn=fn, input=input, modules=(name,), layers=layers, module=module)


def init_module(module: nn.Module, key, *args, **kwargs) -> tuple[dict, dict]:
    """Initialises a Linen module and returns ``(params, batch_stats)`` (``{}`` if it has none)."""
    variables = module.init(key, *args, train=False, **kwargs)
    return variables["params"], variables.get("batch_stats", {})


def apply_module(module: nn.Module, params, batch_stats, name, *args, train: bool, **kwargs):
    """Runs module ``name`` of ``params``/``batch_stats``; returns ``(output, new_batch_stats)``.

    In train mode batch norm uses the batch statistics and its running averages are updated;
    otherwise the stored averages are used and ``new_batch_stats`` is returned unchanged.
    """
    variables = {"params": params[name], "batch_stats": batch_stats.get(name, {})}
    if not train:
        return module.apply(variables, *args, train=False, **kwargs), batch_stats.get(name, {})
    out, updates = module.apply(variables, *args, train=True, mutable=["batch_stats"], **kwargs)
    return out, updates.get("batch_stats", {})
