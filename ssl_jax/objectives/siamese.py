"""Shared pieces of the multi-view objectives: networks as chains of modules, EMA targets,
momentum schedules and the metrics every one of them logs.

A multi-view objective runs the same network — an encoder, then a projector, sometimes a
predictor (notes 001 §3.4.4, projection heads; §3.4.3, BYOL and SimSiam) — on several views of
each example. A `Chain` is that network as named Linen modules applied one after the other;
its parameters live in the objective's ``params`` under those names, and a momentum target
(MoCo's key encoder, BYOL's target, DINO's teacher) is a copy of some of them carried in the
objective state (`Target`) and moved by `ssl_jax.objectives.targets.ema_update`.

Every view of a batch goes through one forward pass (the views concatenated), so batch norm
normalises over all of them, as in SimCLR; the statistics therefore span the global batch and
every view.
"""

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.diagnostics import effective_rank, embedding_std
from ssl_jax.models import ProjectionHead, build_encoder
from ssl_jax.objectives.base import apply_module, init_module
from ssl_jax.objectives.targets import cosine_momentum, ema_update

Chain = tuple[tuple[str, nn.Module], ...]


def head(head_config: Mapping, dtype, **fixed) -> ProjectionHead:
    """A `ProjectionHead` from a config block ``{hidden_dims, output_dim[, last_bn]}``."""
    fields = dict(head_config)
    return ProjectionHead(
        hidden_dims=tuple(fields.pop("hidden_dims")),
        output_dim=fields.pop("output_dim"),
        dtype=dtype,
        **{**fields, **fixed},
    )


def build_chain(config, image_spec, *, projector=None, predictor=None, prefix="") -> Chain:
    """``encoder`` → ``projector`` [→ ``predictor``], module names prefixed by ``prefix``.

    ``projector`` and ``predictor`` are head config blocks (see `head`), or None to leave the
    stage out.
    """
    dtype = jnp.dtype(config.compute_dtype)
    chain = [(f"{prefix}encoder", build_encoder(config.model, image_spec, dtype=dtype))]
    for name, block in (("projector", projector), ("predictor", predictor)):
        if block is not None:
            chain.append((f"{prefix}{name}", head(block, dtype)))
    return tuple(chain)


def init_chain(chain: Chain, key, x) -> tuple[dict, dict]:
    """Initialises each module on the previous one's output; ``(params, batch_stats)``."""
    params, batch_stats = {}, {}
    for (name, module), module_key in zip(chain, jax.random.split(key, len(chain)), strict=True):
        params[name], batch_stats[name] = init_module(module, module_key, x)
        x = module.apply({"params": params[name], "batch_stats": batch_stats[name]}, x, train=False)
    return params, batch_stats


def apply_chain(chain: Chain, params, batch_stats, x, *, train: bool, upto: str | None = None):
    """Runs the chain (up to and including module ``upto``) on ``x``.

    Returns ``({module name: output}, {module name: new batch_stats})``; in inference mode the
    statistics come back unchanged.
    """
    outputs, new_stats = {}, {}
    for name, module in chain:
        x, new_stats[name] = apply_module(module, params, batch_stats, name, x, train=train)
        outputs[name] = x
        if name == upto:
            break
    return outputs, new_stats


def split_views(x, num_views: int) -> list[jax.Array]:
    """[V·B, ...] → V arrays [B, ...] (the inverse of concatenating the views)."""
    return jnp.split(x, num_views)


class Target(NamedTuple):
    """A momentum (EMA) copy of some modules: their parameters and batch-norm statistics."""

    params: dict
    batch_stats: dict


def init_target(params: dict, batch_stats: dict, modules: Sequence[str]) -> Target:
    """The target starts as a copy of the online ``modules``."""
    return Target(
        params={name: params[name] for name in modules},
        batch_stats={name: batch_stats.get(name, {}) for name in modules},
    )


def update_target(target: Target, params: dict, batch_stats: dict, momentum) -> Target:
    """θ_target ← m·θ_target + (1 − m)·θ_online for the target's modules.

    ``batch_stats`` are the target's own running averages from its forward pass in this step
    (it normalises with batch statistics like the online network); they are kept as they are.
    """
    online = {name: params[name] for name in target.params}
    return Target(ema_update(target.params, online, momentum), batch_stats)


def momentum_at(step, cfg, total_steps: int):
    """The EMA momentum at ``step``: constant ``cfg.momentum``, or with ``cfg.momentum_schedule
    == "cosine"`` BYOL's rise from ``cfg.momentum`` to 1 over ``total_steps``."""
    if cfg.get("momentum_schedule", "constant") == "cosine":
        return cosine_momentum(step, total_steps, cfg.momentum)
    return jnp.asarray(cfg.momentum, jnp.float32)


def collapse_metrics(embedding) -> dict:
    """The collapse diagnostics every multi-view objective logs, on the stop-gradient
    embedding [N, D]: mean per-dimension std of the L2-normalised rows (≈ 1/√D spread, → 0
    collapsed) and RankMe's effective rank (→ 1 collapsed)."""
    embedding = jax.lax.stop_gradient(embedding)
    return {
        "embedding_std": embedding_std(embedding),
        "effective_rank": effective_rank(embedding),
    }
