"""A convolutional decoder: a grid of code vectors [B, h, w, D] → image logits [B, H, W, C]."""

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.errors import UserError


def upsamplings_needed(grid_size: int, image_size: int) -> int:
    """How many ×2 upsamplings take a side of ``grid_size`` to at least ``image_size``: the
    number of 2×2 poolings (odd sides padded at the end) that took the image to the grid."""
    count = 0
    while grid_size * 2**count < image_size:
        count += 1
    return count


def upsample_2x(x):
    """Nearest-neighbour ×2 upsampling of [B, h, w, C] (each value repeated in a 2×2 block)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ConvDecoder(nn.Module):
    """Conv 3×3 → ReLU, then (×2 nearest upsampling → conv 3×3 → ReLU) until the grid covers the
    image, then a 3×3 conv to the image's channels, cropped to (H, W) by dropping the last rows and
    columns (where the encoder's 2×2 poolings padded odd sides: 28 → 14 → 7 → 4 comes back as
    4 → 8 → 16 → 32 → 28). The width halves after each upsampling (at least 8 channels).

    Outputs are unbounded logits, like `ssl_jax.models.MLPDecoder`'s.
    """

    image_shape: tuple[int, int, int]
    width: int = 64
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, grid, *, train: bool):
        del train  # no batch statistics in the decoder
        height, width, channels = self.image_shape
        if grid.ndim != 4:
            raise UserError(f"ConvDecoder expects a grid [B, h, w, D], got shape {grid.shape}.")
        stages = max(
            upsamplings_needed(grid.shape[1], height), upsamplings_needed(grid.shape[2], width)
        )
        h = nn.relu(nn.Conv(self.width, (3, 3), dtype=self.dtype)(grid.astype(self.dtype)))
        for stage in range(1, stages + 1):
            h = upsample_2x(h)
            h = nn.Conv(max(self.width // 2**stage, 8), (3, 3), dtype=self.dtype)(h)
            h = nn.relu(h)
        logits = nn.Conv(channels, (3, 3), dtype=self.dtype)(h)
        return logits[:, :height, :width, :]


class CodeConvDecoder(nn.Module):
    """A code vector [B, D] → image logits [B, H, W, C]: Dense → ReLU to a ``grid_size`` ×
    ``grid_size`` × ``width`` map, then `ConvDecoder` (28×28 from a 4×4 map: 4 → 8 → 16 → 32,
    cropped). The convolutional decoder of a deep autoencoder whose code is one vector."""

    image_shape: tuple[int, int, int]
    width: int = 64
    grid_size: int = 4
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, code, *, train: bool):
        if code.ndim != 2:
            raise UserError(f"CodeConvDecoder expects codes [B, D], got shape {code.shape}.")
        side = self.grid_size
        h = nn.Dense(side * side * self.width, dtype=self.dtype)(code.astype(self.dtype))
        h = nn.relu(h).reshape(code.shape[0], side, side, self.width)
        return ConvDecoder(tuple(self.image_shape), width=self.width, dtype=self.dtype)(
            h, train=train
        )
