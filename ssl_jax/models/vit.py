"""Vision Transformer (Dosovitskiy et al. 2021): ViT-Tiny and ViT-Small, pre-norm blocks.

The image [B, H, W, C] is cut into non-overlapping ``patch_size`` × ``patch_size`` patches in
row-major order, each linearly embedded, with a position embedding added (learned, or the
fixed 2-D sine-cosine one of MAE with ``position="sincos"``); a learned CLS token is
prepended; ``depth`` pre-norm blocks ``x + MHSA(LN(x))``, ``x + MLP(LN(x))`` follow, then a
final LayerNorm. The features are the CLS token (``pool="cls"``) or the mean of the patch
tokens (``pool="mean"``), [B, dim].

Masked modelling (MAE, notes 001 §3.3.1: the encoder sees only the visible ~25% of the
patches): `ViT.embed_patches` gives the embedded patches [B, N, D] with their position
embedding and no CLS; ``keep_indices`` [B, K] keeps only those patches before the blocks
(`ViT.__call__`, `ViT.encode`), gathered, so the blocks cost only K tokens; `patchify` /
`unpatchify` (`ssl_jax.masks`) give the pixel targets in the same patch order. Inputs of
another size than at init (multi-crop local views) get the position embedding resized
bicubically to their patch grid (as DINO does).
"""

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.errors import UserError

# The patch order and the gather of visible tokens live with the masks that use them; they
# are imported here too, where the ViT's callers have always found them.
from ssl_jax.masks import keep_patches, patchify, unpatchify  # noqa: F401

POOLS = ("cls", "mean")
POSITIONS = ("learned", "sincos")

# Transformer weights: Xavier-uniform kernels (the ViT and MAE reference setting).
_dense = functools.partial(nn.Dense, kernel_init=nn.initializers.xavier_uniform())


def sincos_position_embedding(grid_shape: tuple[int, int], dim: int):
    """Fixed 2-D sine-cosine position embedding [gh, gw, dim] (MAE, He et al. 2022).

    The first dim/2 channels encode the row, the last dim/2 the column, each as
    [sin(pos·ω_k), cos(pos·ω_k)] with ω_k = 10000^(−k/(dim/4)), k = 0 … dim/4 − 1 (the 1-D
    Transformer encoding). ``dim`` must be divisible by 4.
    """
    grid_h, grid_w = grid_shape
    quarter = dim // 4
    omega = 1.0 / 10000.0 ** (jnp.arange(quarter, dtype=jnp.float32) / quarter)

    def encode(positions):  # [n] → [n, dim/2]
        angles = positions.astype(jnp.float32)[:, None] * omega[None, :]
        return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=1)

    rows = jnp.broadcast_to(encode(jnp.arange(grid_h))[:, None], (grid_h, grid_w, 2 * quarter))
    cols = jnp.broadcast_to(encode(jnp.arange(grid_w))[None, :], (grid_h, grid_w, 2 * quarter))
    return jnp.concatenate([rows, cols], axis=-1)


def resize_position_embedding(embedding, grid_shape: tuple[int, int]):
    """[gh, gw, D] position embedding → [gh', gw', D], bicubic; unchanged when the grid is."""
    if embedding.shape[:2] == tuple(grid_shape):
        return embedding
    return jax.image.resize(embedding, (*grid_shape, embedding.shape[-1]), method="cubic")


class PatchEmbed(nn.Module):
    """[B, H, W, C] → [B, N, dim]: a stride-``patch_size`` convolution + position embedding.

    ``position="learned"``: the position embedding is a parameter [gh, gw, dim] on the patch
    grid of the images seen at init, resized for other grids. ``"sincos"``: the fixed
    `sincos_position_embedding` of each input's grid (no parameter).
    """

    patch_size: int
    dim: int
    position: str = "learned"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        p = self.patch_size
        tokens = nn.Conv(self.dim, (p, p), strides=(p, p), dtype=self.dtype, name="projection")(
            x.astype(self.dtype)
        )
        batch, grid_h, grid_w, dim = tokens.shape
        if self.position == "sincos":
            position = sincos_position_embedding((grid_h, grid_w), dim)
            return (tokens + position.astype(self.dtype)).reshape(batch, grid_h * grid_w, dim)
        # `self.param` would refuse a stored embedding whose grid differs from this input's,
        # so an existing one is read as is and resized.
        if self.has_variable("params", "position_embedding"):
            position = self.get_variable("params", "position_embedding")
        else:
            position = self.param(
                "position_embedding", nn.initializers.normal(0.02), (grid_h, grid_w, dim)
            )
        tokens = tokens + resize_position_embedding(position, (grid_h, grid_w)).astype(self.dtype)
        return tokens.reshape(batch, grid_h * grid_w, dim)


class MlpBlock(nn.Module):
    """[..., D] → Dense(hidden_dim) → GELU → Dense(D)."""

    hidden_dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = nn.gelu(_dense(self.hidden_dim, dtype=self.dtype)(x))
        return _dense(x.shape[-1], dtype=self.dtype)(y)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x)); [B, T, D] → [B, T, D]."""

    num_heads: int
    mlp_ratio: float = 4.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = nn.LayerNorm(dtype=self.dtype)(x)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            dtype=self.dtype,
            kernel_init=nn.initializers.xavier_uniform(),
            # A bf16 softmax over many tokens loses too much; float32 and float64 (the
            # exactness mode) compute it in their own precision.
            force_fp32_for_softmax=jnp.finfo(self.dtype).bits < 32,
        )(y, y)
        x = x + y
        y = nn.LayerNorm(dtype=self.dtype)(x)
        return x + MlpBlock(int(x.shape[-1] * self.mlp_ratio), dtype=self.dtype)(y)


class ViT(nn.Module):
    """A ViT encoder: [B, H, W, C] images in [0, 1] → features [B, dim].

    ``__call__(x, train=..., return_layers=True)`` also returns the named layers in network
    order: ``patch_embed`` [B, K, dim] (the kept patch tokens, no CLS), ``block1`` …
    ``block{depth}`` [B, 1 + K, dim] (CLS first), ``features`` [B, dim]. K = N, the number of
    patches, unless ``keep_indices`` [B, K] is given.
    """

    patch_size: int = 16
    dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    pool: str = "cls"  # "cls" | "mean" (of the patch tokens)
    position: str = "learned"  # "learned" | "sincos" (fixed, as MAE)
    dtype: jnp.dtype = jnp.float32  # compute dtype; parameters stay float32

    def setup(self):
        self.patch_embed = PatchEmbed(
            self.patch_size, self.dim, position=self.position, dtype=self.dtype
        )
        self.cls_token = self.param("cls_token", nn.initializers.zeros, (1, 1, self.dim))
        self.blocks = [
            EncoderBlock(self.num_heads, self.mlp_ratio, dtype=self.dtype)
            for _ in range(self.depth)
        ]
        self.final_norm = nn.LayerNorm(dtype=self.dtype)

    def embed_patches(self, x):
        """[B, H, W, C] images → [B, N, dim] patch tokens with position embedding, no CLS."""
        return self.patch_embed(x)

    def encode_tokens(self, tokens, layers: dict | None = None):
        """[B, K, dim] patch tokens → [B, 1 + K, dim]: CLS prepended, blocks, final LayerNorm.

        Each block's output is stored in ``layers`` (when given) as ``block1`` … ``blockN``.
        """
        cls = jnp.broadcast_to(self.cls_token, (tokens.shape[0], 1, self.dim))
        h = jnp.concatenate([cls.astype(tokens.dtype), tokens], axis=1)
        for index, block in enumerate(self.blocks, start=1):
            h = block(h)
            if layers is not None:
                layers[f"block{index}"] = h
        return self.final_norm(h)

    def encode(self, x, keep_indices=None):
        """[B, H, W, C] → [B, 1 + K, dim] final tokens (CLS first) of the kept patches.

        For MAE: ``vit.apply(variables, x, keep_indices, method="encode")`` encodes only the
        visible patches; ``keep_indices`` [B, K] int (None keeps all N).
        """
        tokens = self.embed_patches(x)
        if keep_indices is not None:
            tokens = keep_patches(tokens, keep_indices)
        return self.encode_tokens(tokens)

    def __call__(self, x, *, train: bool, return_layers: bool = False, keep_indices=None):
        del train  # no batch norm or dropout: the same function in both modes
        self.check_settings()
        layers = {}
        tokens = self.embed_patches(x)
        if keep_indices is not None:
            tokens = keep_patches(tokens, keep_indices)
        layers["patch_embed"] = tokens
        h = self.encode_tokens(tokens, layers)
        features = h[:, 0] if self.pool == "cls" else h[:, 1:].mean(axis=1)
        layers["features"] = features
        return (features, layers) if return_layers else features

    def check_settings(self):
        """Raises `UserError` for an unknown pool or position, or a dim the heads (or the
        sine-cosine position embedding's four parts) do not divide."""
        if self.pool not in POOLS:
            raise UserError(f"unknown vit pool {self.pool!r}; set pool to one of {list(POOLS)}.")
        if self.position not in POSITIONS:
            raise UserError(
                f"unknown vit position {self.position!r}; set position to one of {list(POSITIONS)}."
            )
        if self.position == "sincos" and self.dim % 4:
            raise UserError(
                f"vit position 'sincos' needs dim divisible by 4, got {self.dim}; "
                "choose such a dim or position='learned'."
            )
        if self.dim % self.num_heads:
            raise UserError(
                f"vit dim {self.dim} is not divisible by num_heads {self.num_heads}; "
                "choose num_heads that divides dim."
            )

    def check_input_shape(self, image_shape: Sequence[int]):
        """Raises `UserError` unless this ViT takes [B, *image_shape] images (H, W, C)."""
        self.check_settings()
        if len(image_shape) != 3:
            raise UserError(f"a ViT takes (H, W, C) images, got shape {tuple(image_shape)}.")
        height, width = image_shape[:2]
        if height % self.patch_size or width % self.patch_size:
            side = math.gcd(height, width)
            fitting = [p for p in range(2, 17) if side % p == 0] or [1]
            raise UserError(
                f"a ViT with patch_size {self.patch_size} needs image sides divisible by it, "
                f"got {height}×{width}; set --config.model.patch_size to one that fits "
                f"({', '.join(map(str, fitting))})."
            )


ViTTiny = functools.partial(ViT, dim=192, depth=12, num_heads=3)
ViTSmall = functools.partial(ViT, dim=384, depth=12, num_heads=6)
