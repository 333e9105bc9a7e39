"""SimCLR: contrastive learning of two augmented views with the NT-Xent loss.

Notes 001 §3.4 (multi-view learning; §3.4.2 InfoNCE, §3.4.4 temperature and projection
heads), 002 (SimCLR). Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", 2020.

Modules: ``encoder`` (evaluated; its features h) and ``projector`` (MLP head g, z = g(h)).
"""

import jax
import jax.numpy as jnp
import optax

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.diagnostics import alignment, uniformity
from ssl_jax.losses import contrastive_accuracy, nt_xent_logits
from ssl_jax.losses import l2_normalize as l2_normalize  # re-exported: tests import it here
from ssl_jax.models import ProjectionHead, build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, apply_module, init_module
from ssl_jax.objectives.siamese import collapse_metrics

# The config block ``objective.name=simclr`` switches to (ssl_jax.config.switch_block).
DEFAULTS = dict(temperature=0.2, projector=dict(hidden_dims=(512,), output_dim=128))


def nt_xent_loss(z1, z2, temperature):
    """SimCLR's NT-Xent and its top-1 contrastive accuracy: ``ssl_jax.losses.nt_xent``.

    With u = z/||z|| for the 2B views and s_ij = u_iᵀu_j / τ, the loss of view i whose positive
    is view p(i) (the other view of the same image) is

        ℓ_i = −log [ exp(s_{i,p(i)}) / Σ_{j≠i} exp(s_ij) ],      L = (1/2B) Σ_i ℓ_i,

    InfoNCE (notes 001 §3.4.2) with the other 2B − 2 views as negatives M. The batch must be
    the **global** batch: under the trainer's global-view jit it is, and the similarity matrix
    is computed across all devices. Reductions run in float32 (float64 in the exactness mode).

    Args:
      z1, z2: [B, D] projections of the first and second view of the same B images.
      temperature: τ > 0.

    Returns:
      (loss, top-1 accuracy of picking the positive among the 2B − 1 candidates).
    """
    logits, positives = nt_xent_logits(z1, z2, temperature)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, positives).mean()
    return loss, contrastive_accuracy(logits, positives)


@register_objective("simclr")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "simclr", kind="images")
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    projector = ProjectionHead(
        hidden_dims=tuple(cfg.projector.hidden_dims),
        output_dim=cfg.projector.output_dim,
        dtype=dtype,
    )
    aug_config = config.aug

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, proj_key = jax.random.split(key)
        enc_params, enc_stats = init_module(encoder, enc_key, images)
        features = encoder.apply(
            {"params": enc_params, "batch_stats": enc_stats}, images, train=False
        )
        proj_params, proj_stats = init_module(projector, proj_key, features)
        params = {"encoder": enc_params, "projector": proj_params}
        batch_stats = {"encoder": enc_stats, "projector": proj_stats}
        return params, batch_stats, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step, group
        view1, view2 = augment.make_views(batch["images"], key, aug_config)
        # Both views go through one forward pass, so batch norm normalises over all 2B views.
        h, enc_stats = apply_module(
            encoder, params, batch_stats, "encoder", jnp.concatenate([view1, view2]), train=True
        )
        z, proj_stats = apply_module(projector, params, batch_stats, "projector", h, train=True)
        z1, z2 = jnp.split(z, 2)
        value, accuracy = nt_xent_loss(z1, z2, cfg.temperature)
        new_stats = {"encoder": enc_stats, "projector": proj_stats}
        z1, z2 = jax.lax.stop_gradient((z1, z2))
        metrics = {
            "loss": value,
            "contrastive_acc": accuracy,
            # Collapse monitors on the projections, as every multi-view objective logs them:
            # std ≈ 1/sqrt(dim) when healthy, → 0 collapsed; effective rank → 1 collapsed.
            **collapse_metrics(z1),
            # Wang & Isola's two halves of the contrastive loss, on the projections: positives
            # pulled together (alignment ↓) while the views spread over the sphere (uniformity ↓).
            "alignment": alignment(z1, z2),
            "uniformity": uniformity(z1),
        }
        return value, LossOutput(new_stats, metrics)

    return Objective(name="simclr", init=init, loss=loss)
