"""CPC on 2-D patch grids: contrastive predictive coding of an image's rows of patches.

Notes 002 §2.8 (CPC; its 2-D form for images), van den Oord et al. 2018 §3.2. An image is cut
into a G_h × G_w grid of overlapping ``patch_size`` patches, ``patch_stride`` apart (28×28
digits, 8 and 4: 6 × 6). The encoder (``config.model``) embeds every patch on its own,
z_{i,j} = g_enc(x_{i,j}); a GRU runs down each column of the grid, so the context c_{i,j} =
g_ar(z_{≤i, j}) has read the patches of rows 0..i above and at (i, j) only; and one linear map
W_k per offset k = 1..K scores the patch k rows below, f_k = exp(z_{i+k,j}ᵀ W_k c_{i,j}). The
loss is CPC's InfoNCE (`ssl_jax.objectives.cpc.cpc_infonce_loss`) with each column of each
image taken as a sequence: the candidates for an anchor (b, i, j) are the patches k rows below
every anchor of the global batch — the true one and the others of the same image (other rows
and columns) and of the other images.

Modules: ``encoder`` (patches → z), ``context`` (the column GRU), ``predictor`` (W_1..W_K).
Representations of whole images: ``features`` (z averaged over the grid, the paper's
linear-probe readout) and ``context`` (c averaged over the grid).
"""

import jax
import jax.numpy as jnp

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.models import build_encoder
from ssl_jax.models.audio import GRUContext
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import (
    LossOutput,
    NoState,
    Objective,
    Representation,
    apply_module,
    init_module,
)
from ssl_jax.objectives.cpc import OffsetPredictors, cpc_infonce_loss
from ssl_jax.precision import at_least_float32

DEFAULTS = dict(patch_size=8, patch_stride=4, context_dim=64, prediction_steps=2)


def grid_size(length: int, patch: int, stride: int) -> int:
    return (length - patch) // stride + 1


def grid_patches(images, patch: int, stride: int):
    """[B, H, W, C] → [B, G_h, G_w, patch, patch, C]: patch (i, j) has its top-left corner at
    (i·stride, j·stride)."""
    _, height, width, _ = images.shape
    rows = jnp.arange(grid_size(height, patch, stride))[:, None] * stride + jnp.arange(patch)
    cols = jnp.arange(grid_size(width, patch, stride))[:, None] * stride + jnp.arange(patch)
    return images[:, rows[:, None, :, None], cols[None, :, None, :]]


@register_objective("cpc_grid")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    dtype = jnp.dtype(config.compute_dtype)
    image_spec = require(input_spec, "images", "cpc_grid", kind="images")
    height, width, channels = image_spec.shape
    patch, stride, num_offsets = cfg.patch_size, cfg.patch_stride, int(cfg.prediction_steps)
    if not (1 <= patch <= min(height, width) and stride >= 1):
        raise UserError(
            f"cpc_grid patch_size {patch} must fit the {height}×{width} images and patch_stride "
            f"{stride} be ≥ 1; set --config.objective.patch_size / patch_stride."
        )
    rows, cols = grid_size(height, patch, stride), grid_size(width, patch, stride)
    if not 1 <= num_offsets < rows:
        raise UserError(
            f"cpc_grid prediction_steps must be in 1..{rows - 1} (the grid has {rows} rows of "
            f"patches), got {num_offsets}; lower it or use smaller patches or stride."
        )
    encoder = build_encoder(config.model, (patch, patch, channels), dtype=dtype)
    context = GRUContext(features=cfg.context_dim, dtype=dtype)

    def embed(apply, images):
        """images → z [B, G_h, G_w, D] through ``apply(patches [N, P, P, C])``."""
        patches = grid_patches(images, patch, stride)
        z = apply(patches.reshape(-1, patch, patch, channels))
        return z.reshape(images.shape[0], rows, cols, -1)

    def columns(z):
        """[B, G_h, G_w, D] → [B·G_w, G_h, D]: each column of each image as a sequence."""
        return z.transpose(0, 2, 1, 3).reshape(-1, rows, z.shape[-1])

    def init(key, sample_batch):
        enc_key, ctx_key, pred_key = jax.random.split(key, 3)
        images = sample_batch["images"]
        patches = grid_patches(images, patch, stride).reshape(-1, patch, patch, channels)
        enc_params, enc_stats = init_module(encoder, enc_key, patches)
        variables = {"params": enc_params, "batch_stats": enc_stats}
        z = embed(lambda p: encoder.apply(variables, p, train=False), images)
        ctx_params, _ = init_module(context, ctx_key, columns(z))
        c = context.apply({"params": ctx_params}, columns(z))
        pred_params, _ = init_module(OffsetPredictors(num_offsets, z.shape[-1]), pred_key, c)
        params = {"encoder": enc_params, "context": ctx_params, "predictor": pred_params}
        return params, {"encoder": enc_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, key, step, group
        stats = {}

        def apply(patches):
            out, stats["encoder"] = apply_module(
                encoder, params, batch_stats, "encoder", patches, train=True
            )
            return out

        z = columns(embed(apply, batch["images"]))  # [B·G_w, G_h, D]
        c = context.apply({"params": params["context"]}, z)
        times = jnp.arange(rows - num_offsets)
        predictor = OffsetPredictors(num_offsets, z.shape[-1])
        predictions = predictor.apply({"params": params["predictor"]}, c[:, times])
        value, parts = cpc_infonce_loss(z, predictions, times)
        metrics = {
            "loss": value,
            "mi_bound": jnp.log(z.shape[0] * times.shape[0]) - value,
            "accuracy": parts["accuracy_k"].mean(),
        }
        return value, LossOutput(stats, metrics)

    def patch_embeddings(params, batch_stats, images):
        variables = {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}
        return embed(lambda p: encoder.apply(variables, p, train=False), images)

    def features_fn(params, batch_stats, images):
        return at_least_float32(patch_embeddings(params, batch_stats, images)).mean(axis=(1, 2))

    def context_fn(params, batch_stats, images):
        z = columns(patch_embeddings(params, batch_stats, images))
        c = context.apply({"params": params["context"]}, z)
        return at_least_float32(c).reshape(images.shape[0], -1, c.shape[-1]).mean(axis=1)

    representations = {
        "features": Representation(features_fn, "images", ("encoder",)),
        "context": Representation(context_fn, "images", ("encoder", "context")),
    }
    return Objective(name="cpc_grid", init=init, loss=loss, representations=representations)
