"""SupCon: supervised contrastive learning, every same-label view in the global batch a positive.

Notes 001 §3.4.1 (2) SupCon (positive pairs share a label, negative pairs do not) and §3.4.2
(3) InfoNCE. Khosla et al., "Supervised Contrastive Learning", 2020 (Eq. 2, L^sup_out).
**Supervised**: it reads ``batch["labels"]``.

Modules: ``encoder`` (evaluated) and ``projector`` (the MLP head, z = g(f(x))). Two augmented
views of each of the B images of the global batch give N = 2B views with labels ỹ (each view
carries its image's label). With u = z/‖z‖, s_ia = u_i·u_a / τ, A(i) = {a ≠ i} and
P(i) = {p ∈ A(i) : ỹ_p = ỹ_i},

    ℓ_i = −(1/|P(i)|) Σ_{p∈P(i)} log [ exp(s_ip) / Σ_{a∈A(i)} exp(s_ia) ],
    L = mean of ℓ_i over the views with |P(i)| > 0          (`ssl_jax.losses.supcon_loss`).

P(i) always holds the other view of i's image, and every other view of its class anywhere in
the global batch: the trainer's global-view step sees every device's examples, so a positive
on another device's shard counts like one on the same shard. With every image its own class
the loss is SimCLR's NT-Xent. The paper's code also scales the loss by τ/τ_base; not done here
(with τ_base = τ it is 1).

``mi_bound`` is not defined for SupCon and not logged: the InfoNCE bound I ≥ log M − L
(notes 001 §3.4.2) holds for one positive per anchor among M candidates, while SupCon averages
the log-probabilities of a label-dependent number |P(i)| of positives, so log M − L is no such
bound. The collapse diagnostics are logged on the projections.
"""

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.losses import supcon_loss
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective
from ssl_jax.objectives.siamese import apply_chain, build_chain, collapse_metrics, init_chain

# The config block ``objective.name=supcon`` switches to (ssl_jax.config.switch_block): the
# paper's τ = 0.1; its 2048 → 128 head scaled down for small images.
DEFAULTS = dict(
    temperature=0.1,
    projector=dict(hidden_dims=(512,), output_dim=128),
)


@register_objective("supcon")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "supcon", kind="images")
    require(input_spec, "labels", "supcon", kind="label")
    chain = build_chain(config, image_spec, projector=cfg.projector)

    def init(key, sample_batch):
        params, batch_stats = init_chain(chain, key, sample_batch["images"])
        return params, batch_stats, NoState()

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del state, step, group
        views = augment.make_views(batch["images"], key, config.aug)[:2]
        # One forward pass over both views: batch norm normalises over all 2B of them.
        outputs, new_stats = apply_chain(
            chain, params, batch_stats, jnp.concatenate(views), train=True
        )
        z = outputs["projector"]
        view_labels = jnp.concatenate([batch["labels"], batch["labels"]])
        value = supcon_loss(z, view_labels, cfg.temperature)
        metrics = {"loss": value, **collapse_metrics(z)}
        # The projections, view-major ([view 1 of the B images; view 2]), for tests to recompute
        # the loss from; unused by the trainer, so compiled away.
        return value, LossOutput(new_stats, metrics, {"projections": jax.lax.stop_gradient(z)})

    return Objective("supcon", init, loss)
