"""Masked autoencoder (MAE, He et al. 2022): hide most patches, encode only the visible ones,
predict the hidden pixels with a light decoder.

Notes 001 §3.3.1 (masked prediction, (7) MAE): the image's N patches are masked at random, a
fraction ``mask_ratio`` (75%) of them per example (`ssl_jax.masks.random_masking`); the ViT
encoder runs on the K = N − masked visible patches only, gathered (not zeroed), so its blocks
cost K tokens rather than N; a shallow Transformer decoder receives the encoded visible tokens
(projected to ``decoder_dim``), one shared learned mask token in each hidden position, and a
fixed 2-D sine-cosine position embedding, and predicts each patch's p·p·C pixels. The loss is
the squared error on the hidden patches only:

    L = (1 / Σ_bi m_bi) Σ_bi m_bi · (1/P) Σ_j (ŷ_bij − y_bij)²,   m_bi = 1 if patch i of image b
                                                                  is hidden

with y the patch's pixels, standardised by the patch's own mean and variance when
``norm_pix_loss`` (MAE's better-representation setting: y = (x − μ_patch)/√(σ²_patch + 1e-6)).
Every term is per example, so the loss needs the global batch only for its two sums.

Before masking each image is randomly cropped (area in ``crop_scale``, resized back; () for
none) and, if ``flip``, mirrored, MAE's only augmentations. The encoder must be a ViT
(``model.name=vit_tiny`` or ``vit_small`` with any dim/depth/patch_size; ``position="sincos"``
is MAE's choice).

Modules: ``encoder`` (the ViT, read out as ``encoder``: its ``pool`` of the final tokens of the
whole unmasked image) and ``decoder``. Pictures: held-out images with their hidden patches in
grey, the reconstruction (visible patches as they are, hidden ones predicted) and the original.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.masks import (
    keep_patches,
    masked_patch_mse,
    normalized_patch_targets,
    patchify,
    random_masking,
    unpatchify,
    visible_count,
)
from ssl_jax.models import build_encoder
from ssl_jax.models.vit import EncoderBlock, ViT, sincos_position_embedding
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, module_representation
from ssl_jax.precision import at_least_float32

DEFAULTS = dict(
    mask_ratio=0.75,
    norm_pix_loss=True,
    decoder_dim=128,
    decoder_depth=2,
    decoder_heads=4,
    decoder_mlp_ratio=4.0,
    crop_scale=(0.2, 1.0),
    flip=True,
)

NORM_PIX_EPS = 1e-6
_MASKED_GREY = 0.5  # how hidden patches are shown in the pictures


class MAEDecoder(nn.Module):
    """Encoded visible tokens → predicted pixels of every patch.

    ``encoded`` [B, 1 + K, D_enc] (CLS first, then the K visible patches in the order of
    ``keep_indices``) and ``restore_order`` [B, N] (`ssl_jax.masks.RandomMask`) → [B, N, P]:
    a linear map to ``dim``, the mask token appended N − K times and the sequence put back in
    patch order, the fixed sine-cosine position embedding added, ``depth`` pre-norm blocks, a
    LayerNorm and a linear map to the P = p·p·C pixels of each patch (the CLS is dropped).
    """

    grid_shape: tuple[int, int]
    patch_dim: int
    dim: int = 128
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, encoded, restore_order):
        dense = functools.partial(
            nn.Dense, dtype=self.dtype, kernel_init=nn.initializers.xavier_uniform()
        )
        x = dense(self.dim, name="embed")(encoded)
        cls, visible = x[:, :1], x[:, 1:]
        batch, num_visible, _ = visible.shape
        num_patches = restore_order.shape[1]
        mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.dim))
        hidden = jnp.broadcast_to(
            mask_token.astype(x.dtype), (batch, num_patches - num_visible, self.dim)
        )
        tokens = keep_patches(jnp.concatenate([visible, hidden], axis=1), restore_order)
        position = sincos_position_embedding(self.grid_shape, self.dim).reshape(num_patches, -1)
        h = jnp.concatenate([cls, tokens + position.astype(x.dtype)], axis=1)
        for _ in range(self.depth):
            h = EncoderBlock(self.num_heads, self.mlp_ratio, dtype=self.dtype)(h)
        h = nn.LayerNorm(dtype=self.dtype)(h)
        return dense(self.patch_dim, name="pixels")(h[:, 1:])


def check_encoder(encoder) -> None:
    if not isinstance(encoder, ViT):
        raise UserError(
            "mae encodes the visible patches only and needs a ViT encoder; set "
            "--config.model.name=vit_tiny (and e.g. --config.model.patch_size=4)."
        )


def check_settings(cfg, num_patches: int) -> None:
    """One-line errors for settings MAE cannot run with."""
    num_keep = visible_count(num_patches, cfg["mask_ratio"])
    if not 0 < num_keep < num_patches:
        raise UserError(
            f"mae's objective.mask_ratio={cfg['mask_ratio']} leaves {num_keep} of {num_patches} "
            "patches visible; choose a ratio in (0, 1) that keeps at least one patch and hides "
            "at least one."
        )
    if cfg["decoder_dim"] % 4 or cfg["decoder_dim"] % cfg["decoder_heads"]:
        raise UserError(
            f"mae's objective.decoder_dim={cfg['decoder_dim']} must be divisible by 4 (its "
            f"sine-cosine position embedding) and by decoder_heads={cfg['decoder_heads']}."
        )
    scale = tuple(cfg["crop_scale"])
    if scale and not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
        raise UserError(
            f"mae's objective.crop_scale is (min, max) areas in (0, 1], or () for no crop; got "
            f"{scale}."
        )


def random_crops_and_flips(images, key, crop_scale, flip: bool):
    """MAE's augmentation, per example: a random resized crop of area in ``crop_scale``
    (none if empty) and a left-right flip with probability 1/2 (if ``flip``)."""
    crop_key, flip_key = jax.random.split(key)
    if crop_scale:
        size = images.shape[1:3]
        crop = functools.partial(augment.random_resized_crop, size=size, scale=tuple(crop_scale))
        keys = jax.random.split(crop_key, images.shape[0])
        images = jax.vmap(crop)(images, keys)
    if flip:
        keys = jax.random.split(flip_key, images.shape[0])
        images = jax.vmap(augment.horizontal_flip)(images, keys)
    return images


@register_objective("mae")
def make(config, input_spec) -> Objective:
    image_spec = require(input_spec, "images", "mae", kind="images")
    cfg = {**DEFAULTS, **dict(config.objective)}
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    check_encoder(encoder)
    height, width, channels = image_spec.shape
    p = encoder.patch_size
    grid_shape = (height // p, width // p)
    num_patches = grid_shape[0] * grid_shape[1]
    check_settings(cfg, num_patches)
    decoder = MAEDecoder(
        grid_shape,
        patch_dim=p * p * channels,
        dim=cfg["decoder_dim"],
        depth=cfg["decoder_depth"],
        num_heads=cfg["decoder_heads"],
        mlp_ratio=cfg["decoder_mlp_ratio"],
        dtype=dtype,
    )

    def encode_visible(params, images, keep_indices):
        """[B, H, W, C] → [B, 1 + K, D]: the ViT on the kept patches only."""
        return encoder.apply({"params": params["encoder"]}, images, keep_indices, method="encode")

    def reconstruct(params, images, key):
        """Masks ``images`` at random; returns (the `RandomMask`, predictions [B, N, P])."""
        mask = random_masking(key, images.shape[0], num_patches, cfg["mask_ratio"])
        encoded = encode_visible(params, images, mask.keep_indices)
        predictions = decoder.apply({"params": params["decoder"]}, encoded, mask.restore_order)
        return mask, predictions

    def targets_of(images):
        patches = at_least_float32(patchify(images, p))
        return normalized_patch_targets(patches, NORM_PIX_EPS) if cfg["norm_pix_loss"] else patches

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, dec_key, mask_key = jax.random.split(key, 3)
        enc_params = encoder.init(enc_key, images, train=False)["params"]
        mask = random_masking(mask_key, images.shape[0], num_patches, cfg["mask_ratio"])
        encoded = encoder.apply({"params": enc_params}, images, mask.keep_indices, method="encode")
        dec_params = decoder.init(dec_key, encoded, mask.restore_order)["params"]
        return {"encoder": enc_params, "decoder": dec_params}, {}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del batch_stats, objective_state, step, group
        aug_key, mask_key = jax.random.split(key)
        images = random_crops_and_flips(batch["images"], aug_key, cfg["crop_scale"], cfg["flip"])
        mask, predictions = reconstruct(params, images, mask_key)
        value = masked_patch_mse(at_least_float32(predictions), targets_of(images), mask.mask)
        metrics = {"loss": value, "masked_fraction": mask.mask.mean()}
        return value, LossOutput({}, metrics)

    def pictures(params, batch_stats, images, key):
        """Held-out images with their hidden patches grey, their reconstructions (visible
        patches kept, hidden ones predicted; with ``norm_pix_loss`` the predictions are put
        back in each patch's own mean and scale), and the originals: [3, n, H, W, C]."""
        del batch_stats
        mask, predictions = reconstruct(params, images, key)
        patches = at_least_float32(patchify(images, p))
        predictions = at_least_float32(predictions)
        if cfg["norm_pix_loss"]:
            mean = patches.mean(axis=-1, keepdims=True)
            scale = jnp.sqrt(patches.var(axis=-1, keepdims=True) + NORM_PIX_EPS)
            predictions = predictions * scale + mean
        hidden = mask.mask[..., None]
        masked = patches * (1 - hidden) + _MASKED_GREY * hidden
        pasted = patches * (1 - hidden) + jnp.clip(predictions, 0, 1) * hidden
        grids = [unpatchify(x, p, grid_shape) for x in (masked, pasted, patches)]
        return {"reconstructions": jnp.stack(grids)}

    representations = {"encoder": module_representation(encoder)}
    return Objective(
        name="mae", init=init, loss=loss, representations=representations, pictures=pictures
    )
