"""Vision Transformer (Dosovitskiy et al. 2021): ViT-Tiny and ViT-Small, pre-norm blocks.

The image is cut into non-overlapping ``patch_size`` patches, each linearly embedded, with a
learned position embedding; a CLS token is prepended; the features are the final-LayerNorm
CLS token (``pool="cls"``) or the mean of the patch tokens (``pool="mean"``).

For masked modelling the patch tokens are exposed: `ViT.embed_patches` returns the embedded
patches [B, N, D] (position embedding added, no CLS), and ``keep_indices`` [B, K] keeps only
those patches before the blocks (MAE encodes the visible patches only, notes 001 §3.3.1).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.errors import UserError


class MlpBlock(nn.Module):
    hidden_dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        out_dim = x.shape[-1]
        x = nn.gelu(nn.Dense(self.hidden_dim, dtype=self.dtype)(x))
        return nn.Dense(out_dim, dtype=self.dtype)(x)


class EncoderBlock(nn.Module):
    """x + MHSA(LN(x)), then x + MLP(LN(x))."""

    num_heads: int
    mlp_ratio: float = 4.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = nn.LayerNorm(dtype=self.dtype)(x)
        y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dtype=self.dtype)(y, y)
        x = x + y
        y = nn.LayerNorm(dtype=self.dtype)(x)
        return x + MlpBlock(int(x.shape[-1] * self.mlp_ratio), dtype=self.dtype)(y)


class PatchEmbed(nn.Module):
    """Non-overlapping patches → linear embedding + learned position embedding."""

    patch_size: int
    dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        p = self.patch_size
        tokens = nn.Conv(self.dim, (p, p), strides=(p, p), dtype=self.dtype, name="projection")(
            x.astype(self.dtype)
        )
        batch, grid_h, grid_w, dim = tokens.shape
        tokens = tokens.reshape(batch, grid_h * grid_w, dim)
        position = self.param(
            "position_embedding", nn.initializers.normal(0.02), (1, grid_h * grid_w, dim)
        )
        return tokens + position.astype(self.dtype)


class ViT(nn.Module):
    """Layers: ``patch_embed``, ``block1`` … ``blockN`` (token maps), ``features``."""

    patch_size: int = 16
    dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    pool: str = "cls"  # cls | mean
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.patch_embed = PatchEmbed(self.patch_size, self.dim, dtype=self.dtype)
        self.cls_token = self.param("cls_token", nn.initializers.zeros, (1, 1, self.dim))
        self.blocks = [
            EncoderBlock(self.num_heads, self.mlp_ratio, dtype=self.dtype)
            for _ in range(self.depth)
        ]
        self.final_norm = nn.LayerNorm(dtype=self.dtype)

    def embed_patches(self, x):
        """[B, H, W, C] images → [B, N, D] patch tokens with their position embedding."""
        return self.patch_embed(x)

    def __call__(self, x, *, train: bool, return_layers: bool = False, keep_indices=None):
        del train  # no batch statistics or dropout
        layers = {}
        tokens = self.embed_patches(x)
        if keep_indices is not None:
            tokens = jnp.take_along_axis(tokens, keep_indices[..., None], axis=1)
        layers["patch_embed"] = tokens
        cls = jnp.broadcast_to(self.cls_token, (tokens.shape[0], 1, self.dim)).astype(self.dtype)
        h = jnp.concatenate([cls, tokens], axis=1)
        for index, block in enumerate(self.blocks, start=1):
            h = block(h)
            layers[f"block{index}"] = h
        h = self.final_norm(h)
        features = h[:, 0] if self.pool == "cls" else h[:, 1:].mean(axis=1)
        layers["features"] = features
        return (features, layers) if return_layers else features

    def check_input_shape(self, image_shape: Sequence[int]):
        if self.pool not in ("cls", "mean"):
            raise UserError(f"vit pool must be 'cls' or 'mean', got {self.pool!r}.")
        if self.dim % self.num_heads:
            raise UserError(f"vit dim {self.dim} is not divisible by num_heads {self.num_heads}.")
        height, width = image_shape[:2]
        if height % self.patch_size or width % self.patch_size:
            raise UserError(
                f"a ViT with patch_size {self.patch_size} needs image sides divisible by it, "
                f"got {height}×{width}; set --config.model.patch_size to a divisor "
                f"(e.g. {next(p for p in (16, 8, 7, 4, 2, 1) if height % p == 0 == width % p)})."
            )
