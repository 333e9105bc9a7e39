"""Barlow Twins: make the cross-correlation of the two views' projections the identity.

Notes 001 §3.4.3 (1) (L_BT: an invariance term on the diagonal and a redundancy-reduction
term off it that prevents collapse; its relation to kernel independence criteria such as
HSIC). Zbontar, Jing, Misra, LeCun & Deny, "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction", 2021; the HSIC variant from Tsai, Bai, Morency & Salakhutdinov, "A Note
on Connecting Barlow Twins with Negative-Sample-Free Contrastive Learning", 2021.

Modules: ``encoder`` (evaluated) and ``projector`` (the paper's 3-layer MLP with BN; no
momentum network, no predictor, no stop-gradient). For the projections z₁, z₂ [N, D] of two
views, each dimension standardised over the batch (ẑ = (z − μ)/σ) and C = ẑ₁ᵀẑ₂ / N [D, D],

    off_diagonal="barlow":  L = s·[ Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij² ]
                            (`ssl_jax.losses.barlow_twins_loss`),
    off_diagonal="hsic":    L = s·[ Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} (1 + C_ij)² ]
                            (`ssl_jax.losses.hsic_loss`: Tsai et al.'s form, the linear-kernel
                            HSIC of the views, which pushes the off-diagonal correlations
                            towards −1 instead of 0),

λ = ``lambd`` (0.0051 in the paper) and s = ``scale_loss`` (1; solo-learn's CIFAR recipe uses
0.1). N is the global batch: the mean, the standard deviation and C are statistics of every
device's examples, which the global-view step computes as on one device. A C per device,
from N/d examples, would be a different loss: each of its entries carries sampling noise of
order 1/√(N/d), which the off-diagonal term then penalises.
"""

import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.losses import barlow_twins_loss, hsic_loss
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective
from ssl_jax.objectives.siamese import apply_chain, build_chain, collapse_metrics, init_chain

# The config block ``objective.name=barlow_twins`` switches to (ssl_jax.config.switch_block).
# The paper's projector is 8192-8192-8192 (a wide output helps it, its Fig. 4); narrower
# here for small images.
DEFAULTS = dict(
    projector=dict(hidden_dims=(1024, 1024), output_dim=1024),
    lambd=0.0051,
    scale_loss=1.0,
    off_diagonal="barlow",
)

OFF_DIAGONAL = {"barlow": barlow_twins_loss, "hsic": hsic_loss}


@register_objective("barlow_twins")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "barlow_twins", kind="images")
    if cfg.off_diagonal not in OFF_DIAGONAL:
        raise UserError(
            f"objective.off_diagonal must be one of {tuple(OFF_DIAGONAL)}, "
            f"got {cfg.off_diagonal!r}."
        )
    criterion = OFF_DIAGONAL[cfg.off_diagonal]
    chain = build_chain(config, image_spec, projector=cfg.projector)

    def init(key, sample_batch):
        params, batch_stats = init_chain(chain, key, sample_batch["images"])
        return params, batch_stats, NoState()

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del state, step, group
        views = augment.make_views(batch["images"], key, config.aug)[:2]
        outputs, new_stats = apply_chain(
            chain, params, batch_stats, jnp.concatenate(views), train=True
        )
        z1, z2 = jnp.split(outputs["projector"], 2)
        value = cfg.scale_loss * criterion(z1, z2, cfg.lambd)
        metrics = {"loss": value, **collapse_metrics(outputs["projector"])}
        return value, LossOutput(new_stats, metrics)

    return Objective("barlow_twins", init, loss)
