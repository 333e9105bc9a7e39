"""MoCo v2: a momentum key encoder and a FIFO queue of keys as the negatives of InfoNCE.

Notes 002 (MoCo: dictionary as a queue, momentum encoder, temperature softmax; MoCo v2's MLP
head and stronger views) and 001 §3.4.4 (MoCo's queue and momentum encoder). He et al.,
"Momentum Contrast for Unsupervised Visual Representation Learning", 2020; Chen et al.,
"Improved Baselines with Momentum Contrastive Learning", 2020.

Modules: ``encoder`` (evaluated) and ``projector`` (the MLP head) form the query network f_q.
The key network f_k (its EMA copy, θ_k ← m·θ_k + (1 − m)·θ_q) and the queue of the K most
recent keys are the objective state; neither gets a gradient. For a query q = f_q(v) and its
key k⁺ = f_k(v′) from another view of the same image,

    L = −log [ exp(q·k⁺/τ) / (exp(q·k⁺/τ) + Σ_{k⁻ ∈ queue} exp(q·k⁻/τ)) ]
    (`ssl_jax.losses.info_nce`, unit-length q and k),

and after each step the keys of the whole global batch (every device's) are enqueued, the
oldest dropped. Batch norm normalises over the global batch, as SimCLR does, which plays the
role of the paper's shuffled BN. ``symmetric=True`` adds the loss with the views' roles
swapped (and enqueues both views' keys), as solo-learn's "MoCo v2+".
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.losses import info_nce, info_nce_logits, l2_normalize, mi_lower_bound
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
from ssl_jax.objectives.targets import fifo_enqueue

# The config block ``objective.name=moco_v2`` switches to (ssl_jax.config.switch_block): the
# paper's τ = 0.2 and m = 0.999 with K = 65,536 on ImageNet; a smaller queue and momentum
# suit small datasets and short runs.
DEFAULTS = dict(
    temperature=0.2,
    queue_size=4096,
    momentum=0.99,
    momentum_schedule="constant",
    symmetric=False,
    projector=dict(hidden_dims=(512,), output_dim=128),
)


class MoCoState(NamedTuple):
    target: Target  # the key encoder and projector: EMA of the query network
    queue: jax.Array  # [K, D] unit-length keys, row 0 the newest


@register_objective("moco_v2")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "moco_v2", kind="images")
    if cfg.queue_size < 1:
        raise UserError(f"objective.queue_size must be ≥ 1, got {cfg.queue_size}.")
    chain = build_chain(config, image_spec, projector=cfg.projector)
    modules = tuple(name for name, _ in chain)

    def init(key, sample_batch):
        net_key, queue_key = jax.random.split(key)
        params, batch_stats = init_chain(chain, net_key, sample_batch["images"])
        # The queue starts as random unit vectors (as in the paper): K negatives from step 0.
        queue = l2_normalize(
            jax.random.normal(queue_key, (cfg.queue_size, cfg.projector.output_dim))
        )
        dtype = jax.tree.leaves(params)[0].dtype
        state = MoCoState(init_target(params, batch_stats, modules), queue.astype(dtype))
        return params, batch_stats, state

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del group
        views = augment.make_views(batch["images"], key, config.aug)[:2]
        both = jnp.concatenate(views)
        outputs, new_stats = apply_chain(chain, params, batch_stats, both, train=True)
        q1, q2 = jnp.split(outputs["projector"], 2)
        # Keys: the momentum network on the other view, under stop-gradient.
        key_out, key_stats = apply_chain(
            chain, state.target.params, state.target.batch_stats, both, train=True
        )
        k1, k2 = jnp.split(l2_normalize(jax.lax.stop_gradient(key_out["projector"])), 2)
        value = info_nce(q1, k2, state.queue, cfg.temperature)
        logits, labels = info_nce_logits(q1, k2, state.queue, cfg.temperature)
        new_keys = k2
        if cfg.symmetric:
            value = (value + info_nce(q2, k1, state.queue, cfg.temperature)) / 2
            new_keys = jnp.concatenate([k2, k1])
        metrics = {
            "loss": value,
            "contrastive_acc": jnp.mean(jnp.argmax(logits, -1) == labels),
            # I(q; k) ≥ log M − L with M = K + 1 candidates per query (notes 001 §3.4.2).
            "mi_bound": mi_lower_bound(value, cfg.queue_size + 1),
            **collapse_metrics(outputs["projector"]),
        }
        outputs = {"target_batch_stats": key_stats, "keys": new_keys}
        return value, LossOutput(new_stats, metrics, outputs)

    def update_state(state, params, outputs, step):
        momentum = momentum_at(step, cfg, config.num_steps)
        return MoCoState(
            update_target(state.target, params, outputs["target_batch_stats"], momentum),
            fifo_enqueue(state.queue, outputs["keys"]),
        )

    return Objective("moco_v2", init, loss, update_state)
