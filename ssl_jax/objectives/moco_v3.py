"""MoCo v3: a predictor on the query network, a momentum key network, and the other keys of
the global batch as the negatives — no queue.

Notes 001 §3.4.4 (3) (adding a predictor from the online to the target network, as in BYOL,
improves MoCo and removes the need for a memory queue) and §3.4.2 (InfoNCE and its bound on
mutual information). Chen, Xie & He, "An Empirical Study of Training Self-Supervised Vision
Transformers", 2021.

Modules: ``encoder`` f (evaluated), ``projector`` g (its output batch-normalised,
``last_bn=True``, as the paper's) and ``predictor`` h: the query network is q = h(g(f(x))).
The key network (f_k, g_k) is an EMA copy of (f, g) in the objective state, θ_k ← m·θ_k +
(1 − m)·θ, m rising from ``momentum`` (0.99 in the paper) to 1 on a cosine schedule; it gets
no gradient. For two views x₁, x₂, with qᵢ = h(g(f(xᵢ))) and kᵢ = sg[g_k(f_k(xᵢ))],

    ctr(q, k) = 2τ · (1/B) Σ_i −log [ exp(q̂_i·k̂_i / τ) / Σ_{j=1..B} exp(q̂_i·k̂_j / τ) ],
    L = ctr(q₁, k₂) + ctr(q₂, k₁)      (`ssl_jax.losses.batch_info_nce`, x̂ = x/||x||),

the paper's 2τ making the gradient's scale independent of τ. The B keys are those of the
global batch (every device's), which the global-view step sees without collectives; that they
come from the current batch, not a queue, is what lets MoCo v3 drop the queue.
``mi_bound`` = log B − InfoNCE (the two directions' mean, without the 2τ), with B candidates
per query.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.losses import (
    batch_info_nce,
    batch_info_nce_logits,
    contrastive_accuracy,
    mi_lower_bound,
)
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

# The config block ``objective.name=moco_v3`` switches to (ssl_jax.config.switch_block). The
# paper: τ = 0.2 (ViT; 1.0 for its ResNet-50), m = 0.99 → 1, a 3-layer 4096 → 256 projector
# and a 2-layer 4096 → 256 predictor; narrower heads here for small images.
DEFAULTS = dict(
    temperature=0.2,
    momentum=0.99,
    momentum_schedule="cosine",
    projector=dict(hidden_dims=(1024,), output_dim=128, last_bn=True),
    predictor=dict(hidden_dims=(1024,), output_dim=128),
)


class MoCoV3State(NamedTuple):
    target: Target  # the key network: EMA of encoder and projector


@register_objective("moco_v3")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "moco_v3", kind="images")
    online = build_chain(config, image_spec, projector=cfg.projector, predictor=cfg.predictor)
    target_chain = online[:2]  # encoder → projector
    target_modules = tuple(name for name, _ in target_chain)

    def init(key, sample_batch):
        params, batch_stats = init_chain(online, key, sample_batch["images"])
        return params, batch_stats, MoCoV3State(init_target(params, batch_stats, target_modules))

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del step, group
        views = augment.make_views(batch["images"], key, config.aug)[:2]
        both = jnp.concatenate(views)
        outputs, new_stats = apply_chain(online, params, batch_stats, both, train=True)
        q1, q2 = jnp.split(outputs["predictor"], 2)
        target_out, target_stats = apply_chain(
            target_chain, state.target.params, state.target.batch_stats, both, train=True
        )
        k1, k2 = jnp.split(jax.lax.stop_gradient(target_out["projector"]), 2)
        tau = cfg.temperature
        nce_12, nce_21 = batch_info_nce(q1, k2, tau), batch_info_nce(q2, k1, tau)
        value = 2 * tau * nce_12 + 2 * tau * nce_21  # ctr(q₁, k₂) + ctr(q₂, k₁)
        info_nce = (nce_12 + nce_21) / 2
        logits, labels = batch_info_nce_logits(q1, k2, tau)
        metrics = {
            "loss": value,
            "info_nce": info_nce,
            # I(q; k) ≥ log M − InfoNCE with M = B keys per query (notes 001 §3.4.2).
            "mi_bound": mi_lower_bound(info_nce, q1.shape[0]),
            "contrastive_acc": contrastive_accuracy(logits, labels),
            **collapse_metrics(outputs["projector"]),
        }
        return value, LossOutput(new_stats, metrics, outputs={"target_batch_stats": target_stats})

    def update_state(state, params, outputs, step):
        momentum = momentum_at(step, cfg, config.num_steps)
        return MoCoV3State(
            update_target(state.target, params, outputs["target_batch_stats"], momentum)
        )

    return Objective("moco_v3", init, loss, update_state)
