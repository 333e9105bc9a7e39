"""The margin contrastive loss on every pair of views in the global batch.

Notes 001 §3.4.2 (1) "对比损失" (contrastive loss with a margin ε). Chopra, Hadsell & LeCun,
"Learning a Similarity Metric Discriminatively, with Application to Face Verification", 2005;
Hadsell, Chopra & LeCun, "Dimensionality Reduction by Learning an Invariant Mapping", 2006.
**Supervised** with ``pairs="labels"`` (the default; it reads ``batch["labels"]``),
self-supervised with ``pairs="views"``.

Modules: ``encoder`` (evaluated) and ``projector`` (z = g(f(x))). Two augmented views of each
of the B images of the global batch give N = 2B embeddings; every ordered pair (i, j), i ≠ j,
of them is a pair, positive (Y_ij = 1) or negative (Y_ij = 0) by the rule of ``pairs``:

    "labels": positive when the two views carry the same label (the other view of the same
              image included), negative when the labels differ — DrLIM's MNIST setting;
    "views":  positive when they are the two views of one image, negative otherwise (two
              images of one class are a negative pair: no labels are read).

With d_ij = ‖z_i − z_j‖₂ (z L2-normalised first when ``normalize``) and margin m, each pair
costs (`ssl_jax.losses.margin_contrastive_loss` on that pair)

    ℓ_ij = ½ [ Y_ij d_ij² + (1 − Y_ij) max(0, m − d_ij)² ],

and with P, N the sets of positive and negative pairs

    L = ½ (1/|P|) Σ_{(i,j)∈P} ℓ_ij + ½ (1/|N|) Σ_{(i,j)∈N} ℓ_ij      (``balance=True``), or
    L = mean of ℓ_ij over all N(N − 1) ordered pairs                 (``balance=False``).

Balancing matters because in-batch pairs are mostly negative (for "views", 1 positive per
2B − 2 negatives), and a negative beyond the margin costs nothing: the plain mean would let the
few positive pairs barely count. Chopra et al. drew positive and negative pairs in equal
numbers; balancing is that, over all pairs of the batch. Counting each unordered pair twice
(ordered pairs) changes neither mean. The pairs span every device's examples: the trainer's
global-view step sees the whole global batch.

The loss is not InfoNCE-based, so no ``mi_bound``; the collapse diagnostics are logged on the
projections.
"""

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.losses import l2_normalize, margin_contrastive_loss, pairwise_distances
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective
from ssl_jax.objectives.siamese import apply_chain, build_chain, collapse_metrics, init_chain

PAIRS = ("labels", "views")

# The config block ``objective.name=margin_contrastive`` switches to
# (ssl_jax.config.switch_block). The margin is in the units of the raw projections (no
# normalisation by default), which start about 5-10 apart at 64-128 dimensions: a margin below
# that leaves every negative pair inactive and the loss mostly shrinks the embedding (margin 1,
# 100 steps on digits: kNN 0.82 against 0.91 at random init for one of two seeds; margin 10:
# above random init at both); with ``normalize=True`` distances lie in [0, 2].
DEFAULTS = dict(
    pairs="labels",
    margin=10.0,
    normalize=False,
    balance=True,
    projector=dict(hidden_dims=(512,), output_dim=128),
)


def pair_masks(view_keys):
    """The positive and negative ordered pairs [N, N] (bool) of N views whose keys [N] are
    their labels (``pairs="labels"``) or their image indices (``pairs="views"``): positive
    when the keys agree, negative when they differ; a view is never paired with itself."""
    same = view_keys[:, None] == view_keys[None, :]
    return same & ~jnp.eye(view_keys.shape[0], dtype=bool), ~same


def per_pair_losses(z, positive, margin):
    """ℓ_ij [N, N] of every ordered pair: the loss function applied to each pair on its own."""

    def one_pair(a, b, same):
        return margin_contrastive_loss(a[None], b[None], same[None], margin)

    over_j = jax.vmap(one_pair, in_axes=(None, 0, 0))
    return jax.vmap(over_j, in_axes=(0, None, 0))(z, z, positive)


def _mean_over(values, mask):
    return jnp.sum(jnp.where(mask, values, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def pairs_loss(z, positive, negative, margin, *, balance: bool):
    """L of the docstring from the embeddings [N, D] and the pair masks."""
    losses = per_pair_losses(z, positive, margin)
    if not balance:
        return _mean_over(losses, positive | negative)
    return (_mean_over(losses, positive) + _mean_over(losses, negative)) / 2


@register_objective("margin_contrastive")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "margin_contrastive", kind="images")
    if cfg.pairs not in PAIRS:
        raise UserError(f"objective.pairs must be one of {', '.join(PAIRS)}; got {cfg.pairs!r}.")
    if cfg.pairs == "labels":
        require(input_spec, "labels", "margin_contrastive (pairs='labels')", kind="label")
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
        keys = batch["labels"] if cfg.pairs == "labels" else jnp.arange(images.shape[0])
        positive, negative = pair_masks(jnp.concatenate([keys, keys]))
        embedding = l2_normalize(z) if cfg.normalize else z
        value = pairs_loss(embedding, positive, negative, cfg.margin, balance=cfg.balance)
        distances = pairwise_distances(jax.lax.stop_gradient(embedding), squared=False)
        metrics = {
            "loss": value,
            # Where each kind of pair sits against the margin.
            "positive_distance": _mean_over(distances, positive),
            "negative_distance": _mean_over(distances, negative),
            **collapse_metrics(z),
        }
        # The projections, view-major ([view 1 of the B images; view 2]), for tests to recompute
        # the loss from; unused by the trainer, so compiled away.
        return value, LossOutput(new_stats, metrics, {"projections": jax.lax.stop_gradient(z)})

    return Objective("margin_contrastive", init, loss)
