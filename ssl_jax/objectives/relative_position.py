"""Relative patch position, or context prediction (Doersch et al. 2015): given the centre patch
of a 3×3 grid and one of its 8 neighbours, classify where the neighbour lies.

Notes 001 §3.3.2 ("image permutation": context prediction), 002 §2.5. Patches come from the
same tile geometry as the jigsaw's (`ssl_jax.pretext.patch_pairs`): a gap of ``gap_fraction``
of a cell between neighbours (Doersch et al. used half a patch) and a random ``jitter_fraction``
shift of each patch, so that neither touching edges nor a fixed spacing give the answer away.
The shared encoder f embeds both patches, their embeddings are concatenated and an MLP g
classifies the neighbour's offset k ∈ 0 … 7 (`ssl_jax.pretext.NEIGHBOUR_OFFSETS`, raster order:
up-left, up, up-right, left, right, down-left, down, down-right):

    L = (1/B) Σ_b −log softmax(g([f(c_b); f(n_b)]))_{k_b},   k_b uniform in 0 … 7

Colour dropping (``colour_dropping``, 3-channel images only; `ssl_jax.pretext.
drop_colour_channels`): in each patch one colour channel, drawn uniformly, is kept and the two
others are replaced, by default by their patch mean plus faint Gaussian noise (Doersch et al.'s
choice), so that chromatic aberration cannot tell where in the frame a patch was. Grey images
are left as they are. ``augment=True`` takes one view of ``config.aug`` before cutting.
Logged: ``pretext_accuracy``.

Modules: ``encoder`` (``config.model``; the readable representation, on whole images) and
``head`` (``head_hidden_dims``, to 8 logits). The encoder learns on patches and its batch-norm
averages are those of patches; read-out applies it to whole images.
"""

import jax
import jax.numpy as jnp

from ssl_jax import pretext
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.models import ProjectionHead, build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, apply_module, init_module

DEFAULTS = dict(
    gap_fraction=0.25,
    jitter_fraction=0.12,
    colour_dropping="noise",
    head_hidden_dims=(512,),
    augment=False,
)


@register_objective("relative_position")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "relative_position", kind="images")
    if cfg.colour_dropping not in pretext.COLOUR_DROPPING:
        raise UserError(
            f"objective.colour_dropping must be one of {pretext.COLOUR_DROPPING}, got "
            f"{cfg.colour_dropping!r}."
        )
    dtype = jnp.dtype(config.compute_dtype)
    layout = pretext.tile_layout(
        image_spec.shape, cfg.gap_fraction, cfg.jitter_fraction, objective="relative_position"
    )
    patch_shape = (layout.tile, layout.tile, image_spec.shape[2])
    drops_colour = image_spec.shape[2] == 3 and cfg.colour_dropping != "none"
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    pretext.check_encoder_reads_parts_and_images(
        encoder,
        patch_shape,
        image_spec.shape,
        objective="relative_position",
        part="patches",
        model_name=config.model.name,
    )
    head = ProjectionHead(
        hidden_dims=tuple(cfg.head_hidden_dims),
        output_dim=len(pretext.NEIGHBOUR_OFFSETS),
        dtype=dtype,
    )

    def embed_pairs(params, batch_stats, centres, neighbours, train):
        """Both patches through the one encoder in one batch; [f(c); f(n)] as [B, 2·D]."""
        both = jnp.concatenate([centres, neighbours])
        h, stats = apply_module(encoder, params, batch_stats, "encoder", both, train=train)
        h_centre, h_neighbour = jnp.split(h.reshape(h.shape[0], -1), 2)
        return jnp.concatenate([h_centre, h_neighbour], axis=-1), stats

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, head_key = jax.random.split(key)
        patches = jnp.zeros((images.shape[0], *patch_shape), images.dtype)
        enc_params, enc_stats = init_module(encoder, enc_key, patches)
        h, _ = embed_pairs({"encoder": enc_params}, {"encoder": enc_stats}, patches, patches, False)
        head_params, head_stats = init_module(head, head_key, h)
        params = {"encoder": enc_params, "head": head_params}
        return params, {"encoder": enc_stats, "head": head_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step, group
        view_key, pair_key, colour_key = jax.random.split(key, 3)
        images = batch["images"]
        if cfg.augment:
            images = pretext.augmented_view(images, view_key, config.aug)
        centres, neighbours, labels, _ = pretext.patch_pairs(images, pair_key, layout)
        if drops_colour:
            both, _ = pretext.drop_colour_channels(
                jnp.concatenate([centres, neighbours]), colour_key, cfg.colour_dropping
            )
            centres, neighbours = jnp.split(both, 2)
        h, enc_stats = embed_pairs(params, batch_stats, centres, neighbours, True)
        logits, head_stats = apply_module(head, params, batch_stats, "head", h, train=True)
        value, accuracy = pretext.classification_loss(logits, labels)
        metrics = {"loss": value, "pretext_accuracy": accuracy}
        return value, LossOutput({"encoder": enc_stats, "head": head_stats}, metrics)

    return Objective(name="relative_position", init=init, loss=loss)
