"""The triplet loss with online mining over the global batch (FaceNet; batch-hard).

Notes 001 §3.4.2 (2) "Triplet 损失" and §3.4.1 "关于反例" (hard negative mining). Schroff,
Kalenichenko & Philbin, "FaceNet: A Unified Embedding for Face Recognition and Clustering",
2015 (semi-hard mining, L2-normalised embeddings, margin α = 0.2); Hermans, Beyer & Leibe, "In
Defense of the Triplet Loss for Person Re-Identification", 2017 (batch-hard mining).
**Supervised** with ``positives="labels"`` (the default; it reads ``batch["labels"]``),
self-supervised with ``positives="views"``.

Modules: ``encoder`` (evaluated) and ``projector``; the embedding is e = g(f(x))/‖g(f(x))‖ (on
the unit sphere, as FaceNet's). Two augmented views of each of the B images of the global batch
give N = 2B embeddings, each with a key ỹ: its label (``positives="labels"``: the positives of
an anchor are the other views of its class, its own other view included; the negatives the
views of other classes) or its image index (``positives="views"``: the one positive is the
other augmented view of the same image, every view of another image is a negative). With d the
Euclidean distance (``squared=False``) or its square (``squared=True``, FaceNet's) and margin m,
the triplets are mined online among all N views:

    batch_hard: ℓ_a = max(0, max_{p: ỹ_p = ỹ_a, p ≠ a} d(a, p) − min_{n: ỹ_n ≠ ỹ_a} d(a, n) + m),
                L = mean over the anchors (`ssl_jax.losses.batch_hard_triplet_loss`);
    semi_hard:  for each pair (a, p), n* = the closest negative farther than p (else the
                farthest negative), L = mean over pairs of max(0, d(a, p) − d(a, n*) + m)
                (`ssl_jax.losses.semi_hard_triplet_loss`).

Mining spans every device's examples: the trainer's global-view step sees the whole global
batch, so an anchor's hardest negative is found wherever it sits. semi_hard holds an [N, N, N]
array (O(N³) memory: ~0.5 GB of float32 at N = 512).

Not InfoNCE-based, so no ``mi_bound``; the collapse diagnostics are logged on the
(unnormalised) projections, and ``active_fraction``, the share of anchors whose batch-hard
triplet still violates the margin, shows how much of the batch still teaches.
"""

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.losses import (
    batch_hard_triplet_loss,
    l2_normalize,
    pairwise_distances,
    semi_hard_triplet_loss,
)
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective
from ssl_jax.objectives.siamese import apply_chain, build_chain, collapse_metrics, init_chain

MINING = {"batch_hard": batch_hard_triplet_loss, "semi_hard": semi_hard_triplet_loss}
POSITIVES = ("labels", "views")

# The config block ``objective.name=triplet`` switches to (ssl_jax.config.switch_block):
# FaceNet's margin 0.2 on the unit sphere, Hermans et al.'s batch-hard mining with Euclidean
# distances; FaceNet's own setting is mining="semi_hard", squared=True.
DEFAULTS = dict(
    mining="batch_hard",
    margin=0.2,
    squared=False,
    positives="labels",
    projector=dict(hidden_dims=(512,), output_dim=128),
)


def _active_fraction(embedding, keys, margin, squared):
    """The share of anchors whose batch-hard triplet violates the margin."""
    distances = pairwise_distances(embedding, squared=squared)
    same = keys[:, None] == keys[None, :]
    hardest_positive = jnp.max(jnp.where(same, distances, 0.0), axis=-1)
    hardest_negative = jnp.min(jnp.where(same, jnp.inf, distances), axis=-1)
    return jnp.mean(hardest_positive - hardest_negative + margin > 0)


@register_objective("triplet")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "triplet", kind="images")
    if cfg.mining not in MINING:
        raise UserError(f"objective.mining must be one of {', '.join(MINING)}; got {cfg.mining!r}.")
    if cfg.positives not in POSITIVES:
        raise UserError(
            f"objective.positives must be one of {', '.join(POSITIVES)}; got {cfg.positives!r}."
        )
    if cfg.positives == "labels":
        require(input_spec, "labels", "triplet (positives='labels')", kind="label")
    mined_loss = MINING[cfg.mining]
    chain = build_chain(config, image_spec, projector=cfg.projector)

    def init(key, sample_batch):
        params, batch_stats = init_chain(chain, key, sample_batch["images"])
        return params, batch_stats, NoState()

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del state, step, group
        images = batch["images"]
        views = augment.make_views(images, key, config.aug)[:2]
        # One forward pass over both views: batch norm normalises over all 2B of them.
        outputs, new_stats = apply_chain(
            chain, params, batch_stats, jnp.concatenate(views), train=True
        )
        z = outputs["projector"]
        keys = batch["labels"] if cfg.positives == "labels" else jnp.arange(images.shape[0])
        keys = jnp.concatenate([keys, keys])
        embedding = l2_normalize(z)
        value = mined_loss(embedding, keys, cfg.margin, squared=cfg.squared)
        metrics = {
            "loss": value,
            "active_fraction": _active_fraction(
                jax.lax.stop_gradient(embedding), keys, cfg.margin, cfg.squared
            ),
            **collapse_metrics(z),
        }
        # The projections, view-major ([view 1 of the B images; view 2]), for tests to recompute
        # the loss from; unused by the trainer, so compiled away.
        return value, LossOutput(new_stats, metrics, {"projections": jax.lax.stop_gradient(z)})

    return Objective("triplet", init, loss)
