"""The objective interface: what an objective gives the trainer.

An objective is a handful of pure functions over explicit pytrees, bundled in an `Objective`
(the same shape as an optax ``GradientTransformation``: data in, data out, nothing hidden):

``init(key, images) -> (params, batch_stats, objective_state)``
    ``params`` and ``batch_stats`` are dicts keyed by module name. The module whose
    representation is evaluated is always called ``"encoder"`` and is built from
    ``config.model`` (so `ssl_jax.load_encoder` and the readout need no objective code).
    ``objective_state`` is any pytree the objective carries between steps: EMA target
    parameters, a queue of keys, a centre; ``{}`` when there is none.

``loss(params, batch_stats, objective_state, batch, key, *, group) -> (loss, LossOutput)``
    ``batch`` is ``{"images": [B, H, W, C] float32 in [0, 1], "labels": [B] int32}`` (labels
    only when the dataset has them) holding the **global** batch: the trainer jit-compiles the
    step over a device mesh in the global view, so a loss that mixes examples (negatives,
    cross-correlation, centring, queues) sees every device's examples without collectives.
    ``key`` is this step's PRNG key (augmentations, masks, noise). ``group`` names the
    parameter group being differentiated (see ``param_groups``).

``update_state(objective_state, params, outputs, step) -> objective_state``
    Called once per step after the optimizer updates, with the new ``params`` and the
    ``outputs`` the losses returned: an EMA step of a target network, a FIFO enqueue, a centre
    update. Nothing in it is differentiated.

``param_groups``: ``{group: (module names...)}``, updated one after the other in each step, each
    with its own optimizer (``config.optim_groups.<group>``, else ``config.optim``) and its own
    gradient of ``loss(..., group=group)`` with the other groups frozen; GANs use two groups.
    ``None`` means a single group ``"model"`` holding every module.
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
