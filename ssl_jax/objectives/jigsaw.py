"""Jigsaw puzzles (Noroozi & Favaro 2016): recover which permutation shuffled a 3×3 grid of
tiles, with a context-free network.

Notes 001 §3.3.2 ("image permutation"), 002. Each image is cut into 3×3 tiles with a gap and
random jitter (`ssl_jax.pretext.tile_layout`); a permutation π_p of a fixed subset
{π_1 … π_P} of the 9! (`ssl_jax.pretext.jigsaw_permutations`: greedy maximal minimum Hamming
distance, ``num_permutations`` = P, ``permutation_seed``) puts tile π_p(k) at position k. The
encoder f embeds each tile on its own (one shared network, nine times: the "context-free"
architecture, no tile sees another before the head), the embeddings are concatenated in
position order and an MLP g classifies the permutation:

    L = (1/B) Σ_b −log softmax(g([f(t_{π_p(1)}); …; f(t_{π_p(9)})]))_p,   p uniform in 1 … P

The gap (``gap_fraction`` of a cell, at least that many pixels between neighbours) and the
jitter (``jitter_fraction``, a random shift of each tile inside its cell) keep the network from
solving the puzzle by continuing edges and lines across tile borders. On 8×8 images the cells
are 2 pixels and the tiles fill them (no gap); 28×28 MNIST gives 7-pixel tiles in 9-pixel
cells. ``augment=True`` takes one view of ``config.aug`` before cutting. Logged:
``pretext_accuracy``.

Modules: ``encoder`` (``config.model``; the readable representation, on whole images: the
readout needs nothing of the tiles) and ``head`` (``head_hidden_dims``, to P logits). The
encoder learns on tiles and its batch-norm averages are those of tiles; read-out applies it
to whole images.
"""

import jax
import jax.numpy as jnp

from ssl_jax import pretext
from ssl_jax.data.spec import require
from ssl_jax.models import ProjectionHead, build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, apply_module, init_module

DEFAULTS = dict(
    num_permutations=100,
    permutation_seed=0,
    gap_fraction=0.15,
    jitter_fraction=0.12,
    head_hidden_dims=(512,),
    augment=False,
)


@register_objective("jigsaw")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "jigsaw", kind="images")
    dtype = jnp.dtype(config.compute_dtype)
    layout = pretext.tile_layout(
        image_spec.shape, cfg.gap_fraction, cfg.jitter_fraction, objective="jigsaw"
    )
    permutations = pretext.jigsaw_permutations(cfg.num_permutations, cfg.permutation_seed)
    num_tiles = layout.grid * layout.grid
    tile_shape = (layout.tile, layout.tile, image_spec.shape[2])
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    pretext.check_encoder_reads_parts_and_images(
        encoder,
        tile_shape,
        image_spec.shape,
        objective="jigsaw",
        part="tiles",
        model_name=config.model.name,
    )
    head = ProjectionHead(
        hidden_dims=tuple(cfg.head_hidden_dims), output_dim=len(permutations), dtype=dtype
    )

    def embed_puzzles(params, batch_stats, puzzles, train):
        """[B, 9, t, t, C] → the tile embeddings side by side in position order, [B, 9·D]."""
        tiles = puzzles.reshape(-1, *tile_shape)
        h, stats = apply_module(encoder, params, batch_stats, "encoder", tiles, train=train)
        return h.reshape(puzzles.shape[0], -1), stats

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, head_key = jax.random.split(key)
        puzzles = jnp.zeros((images.shape[0], num_tiles, *tile_shape), images.dtype)
        enc_params, enc_stats = init_module(encoder, enc_key, puzzles[:, 0])
        h, _ = embed_puzzles({"encoder": enc_params}, {"encoder": enc_stats}, puzzles, False)
        head_params, head_stats = init_module(head, head_key, h)
        params = {"encoder": enc_params, "head": head_params}
        return params, {"encoder": enc_stats, "head": head_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step, group
        view_key, puzzle_key = jax.random.split(key)
        images = batch["images"]
        if cfg.augment:
            images = pretext.augmented_view(images, view_key, config.aug)
        puzzles, labels, _ = pretext.jigsaw_puzzles(images, puzzle_key, layout, permutations)
        h, enc_stats = embed_puzzles(params, batch_stats, puzzles, True)
        logits, head_stats = apply_module(head, params, batch_stats, "head", h, train=True)
        value, accuracy = pretext.classification_loss(logits, labels)
        metrics = {"loss": value, "pretext_accuracy": accuracy}
        return value, LossOutput({"encoder": enc_stats, "head": head_stats}, metrics)

    return Objective(name="jigsaw", init=init, loss=loss)
