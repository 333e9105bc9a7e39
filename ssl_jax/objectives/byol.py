"""BYOL: an online network predicts the projection of an EMA target network, no negatives.

Notes 001 §3.4.3 (BYOL and SimSiam: asymmetric networks that avoid collapse without negative
pairs). Grill et al., "Bootstrap Your Own Latent", 2020.

Modules: ``encoder`` (evaluated), ``projector`` and ``predictor`` (online). The target network
(encoder and projector) lives in the objective state, gets no gradient, and follows the online
weights by θ_t ← m·θ_t + (1 − m)·θ_o after each step, with m rising from ``momentum`` (τ_base,
0.996 in the paper) to 1 on a cosine schedule of the step. For two views v, v′:

    L = ℓ(q(g(f(v))), sg[g_t(f_t(v′))]) + ℓ(q(g(f(v′))), sg[g_t(f_t(v))]),
    ℓ(p, z) = 2 − 2·cos(p, z)   (`ssl_jax.losses.byol_loss`).

``use_predictor=False`` drops the predictor (the collapse ablation of notes 001 §3.4.3).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.losses import byol_loss
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, Objective
from ssl_jax.objectives.siamese import (
    Target,
    apply_chain,
    build_chain,
    collapse_metrics,
    init_chain,
    init_target,
    momentum_at,
    update_target,
)

# The config block ``objective.name=byol`` switches to (ssl_jax.config.switch_block); the
# paper's heads are 4096 → 256 wide, scaled down here for small images.
DEFAULTS = dict(
    projector=dict(hidden_dims=(1024,), output_dim=128),
    predictor=dict(hidden_dims=(1024,), output_dim=128),
    momentum=0.99,
    momentum_schedule="cosine",
    use_predictor=True,
)


class BYOLState(NamedTuple):
    target: Target  # EMA copy of encoder and projector


@register_objective("byol")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "byol", kind="images")
    online = build_chain(
        config,
        image_spec,
        projector=cfg.projector,
        predictor=cfg.predictor if cfg.use_predictor else None,
    )
    target_chain = online[:2]  # encoder → projector
    target_modules = tuple(name for name, _ in target_chain)

    def init(key, sample_batch):
        params, batch_stats = init_chain(online, key, sample_batch["images"])
        return params, batch_stats, BYOLState(init_target(params, batch_stats, target_modules))

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del group
        views = augment.make_views(batch["images"], key, config.aug)[:2]
        both = jnp.concatenate(views)
        outputs, new_stats = apply_chain(online, params, batch_stats, both, train=True)
        p1, p2 = jnp.split(outputs[online[-1][0]], 2)
        target_out, target_stats = apply_chain(
            target_chain, state.target.params, state.target.batch_stats, both, train=True
        )
        t1, t2 = jnp.split(jax.lax.stop_gradient(target_out["projector"]), 2)
        value = byol_loss(p1, t2) + byol_loss(p2, t1)
        metrics = {"loss": value, **collapse_metrics(outputs["projector"])}
        return value, LossOutput(new_stats, metrics, outputs={"target_batch_stats": target_stats})

    def update_state(state, params, outputs, step):
        momentum = momentum_at(step, cfg, config.num_steps)
        return BYOLState(
            update_target(state.target, params, outputs["target_batch_stats"], momentum)
        )

    return Objective("byol", init, loss, update_state)
