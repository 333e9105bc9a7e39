"""SimSiam: a Siamese network whose predictor regresses the other view's projection, with a
stop-gradient on that projection and neither negatives nor a momentum encoder.

Notes 001 §3.4.3 (2) (BYOL and SimSiam: θ′ ← θ at every step, i.e. the target network is
the online network itself, and optimising θ′ directly collapses the representation). Chen &
He, "Exploring Simple Siamese Representation Learning", 2021.

Modules: ``encoder`` f (evaluated), ``projector`` g (its output batch-normalised,
``last_bn=True``, as the paper's projection MLP) and ``predictor`` h (a bottleneck MLP). For
two views x₁, x₂ of an image, zᵢ = g(f(xᵢ)), pᵢ = h(zᵢ) and

    D(p, z) = −(1/B) Σ_b cos(p_b, z_b),
    L = ½ D(p₁, sg[z₂]) + ½ D(p₂, sg[z₁])   (`ssl_jax.losses.simsiam_loss`),

sg the stop-gradient: the projections are targets, fixed within the step. ``stop_gradient=
False`` is the paper's collapse ablation (its Fig. 2): the same loss with the gradient also
flowing through z, which drives every output to one point (embedding_std → 0, effective
rank → 1). ``losses.simsiam_loss`` applies the stop-gradient inside, so the ablation computes
−cos here instead.
"""

import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.losses import l2_normalize, simsiam_loss
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective
from ssl_jax.objectives.siamese import apply_chain, build_chain, collapse_metrics, init_chain
from ssl_jax.precision import at_least_float32

# The config block ``objective.name=simsiam`` switches to (ssl_jax.config.switch_block). The
# paper's heads are 2048 wide with a 512-wide predictor bottleneck (¼ of the output, which
# its Table 5 finds helps); the same ratio at a width for small images.
DEFAULTS = dict(
    projector=dict(hidden_dims=(1024,), output_dim=256, last_bn=True),
    predictor=dict(hidden_dims=(64,), output_dim=256),
    stop_gradient=True,
)


def negative_cosine(prediction, target):
    """D(p, z) = −(1/B) Σ_b cos(p_b, z_b) *with* the gradient through z: `simsiam_loss`
    without its stop-gradient, for the collapse ablation only."""
    p = l2_normalize(at_least_float32(prediction))
    z = l2_normalize(at_least_float32(target))
    return -jnp.mean(jnp.sum(p * z, axis=-1))


@register_objective("simsiam")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "simsiam", kind="images")
    chain = build_chain(config, image_spec, projector=cfg.projector, predictor=cfg.predictor)
    distance = simsiam_loss if cfg.stop_gradient else negative_cosine

    def init(key, sample_batch):
        params, batch_stats = init_chain(chain, key, sample_batch["images"])
        return params, batch_stats, NoState()

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del state, step, group
        views = augment.make_views(batch["images"], key, config.aug)[:2]
        # One pass over both views: the target z of one view and the prediction p of the
        # other come from the same weights (θ′ = θ) and the same batch statistics.
        outputs, new_stats = apply_chain(
            chain, params, batch_stats, jnp.concatenate(views), train=True
        )
        z1, z2 = jnp.split(outputs["projector"], 2)
        p1, p2 = jnp.split(outputs["predictor"], 2)
        value = distance(p1, z2) / 2 + distance(p2, z1) / 2
        metrics = {"loss": value, **collapse_metrics(outputs["projector"])}
        return value, LossOutput(new_stats, metrics)

    return Objective("simsiam", init, loss)
