"""VICReg: invariance between the views, plus a variance hinge and a covariance penalty on each
view's projections that keep them from collapsing.

Notes 001 §3.4.3 (1) (objectives with an attraction term and a term that prevents collapse;
"similar losses that keep the variance of the features non-zero also prevent collapse",
citing Bardes et al.). Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance
Regularization for Self-Supervised Learning", 2022.

Modules: ``encoder`` (evaluated) and ``projector`` (the paper's 3-layer "expander" MLP; no
momentum network, predictor or stop-gradient). For the projections Z, Z′ [N, D] of two views,
with S(z_j) = √(Var(z_j) + ε) and Cov(Z) = (Z − Z̄)ᵀ(Z − Z̄)/(N − 1),

    invariance = (1/(N·D)) Σ_{n,j} (Z_nj − Z′_nj)²,
    variance   = ½ (1/D) Σ_j max(0, 1 − S(z_j)) + ½ (1/D) Σ_j max(0, 1 − S(z′_j)),
    covariance = (1/D) Σ_{i≠j} Cov(Z)_ij² + (1/D) Σ_{i≠j} Cov(Z′)_ij²,
    L = λ·invariance + μ·variance + ν·covariance,   λ = μ = 25, ν = 1
    (`ssl_jax.losses.vicreg_loss` / `vicreg_terms`; the official code's ½ on the variance).

The three terms are logged. N is the global batch: the means, variances and covariances are
statistics of every device's examples, computed by the global-view step as on one device.
"""

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.losses import vicreg_loss, vicreg_terms
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective
from ssl_jax.objectives.siamese import apply_chain, build_chain, collapse_metrics, init_chain

# The config block ``objective.name=vicreg`` switches to (ssl_jax.config.switch_block). The
# paper's expander is 8192-8192-8192; narrower here for small images.
DEFAULTS = dict(
    projector=dict(hidden_dims=(1024, 1024), output_dim=1024),
    sim_coeff=25.0,
    std_coeff=25.0,
    cov_coeff=1.0,
)


@register_objective("vicreg")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "vicreg", kind="images")
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
        value = vicreg_loss(z1, z2, cfg.sim_coeff, cfg.std_coeff, cfg.cov_coeff)
        # The same terms again for the log; XLA computes them once.
        terms = vicreg_terms(*jax.lax.stop_gradient((z1, z2)))
        metrics = {"loss": value, **terms, **collapse_metrics(outputs["projector"])}
        return value, LossOutput(new_stats, metrics)

    return Objective("vicreg", init, loss)
