"""DCGAN-style networks of the adversarial objectives: a generator and discriminator pieces.

Radford et al. (2016)'s recipe, at the scale of small images: the generator projects z to a
small map and doubles its size in each stage (batch norm and ReLU, a sigmoid image at the end);
the discriminator halves the size with stride-2 convolutions and LeakyReLU(0.2). Notes 003
(GANs), 001 §3.2 (BiGAN / ALI).

A discriminator is a feature trunk and a head, two modules, so that the trunk alone can be
read out: the DCGAN paper reads features out of its discriminator, every layer max-pooled to a
4 × 4 grid (`grid_max_pool`).

- `Generator`: z [B, L] → images [B, H, W, C] in [0, 1], any H × W.
- `ConvDiscriminator`: images [B, H, W, C] → features [B, F] (the image discriminator's trunk).
- `DiscriminatorHead`: features [B, F] → logits [B] (with the trunk: the image discriminator).
- `JointDiscriminatorHead`: (image features [B, F], z [B, L]) → logits [B] (with the trunk:
  BiGAN's joint discriminator D(x, z)).

The discriminator pieces have no batch norm: each example's logit depends on that example
alone, which the R1 penalty (a per-example input gradient) needs, and a discriminator that
normalises over a batch of all-real or all-fake examples can tell the batches apart by their
statistics instead of by the examples. Dropout (ALI's regulariser of D) is on when
``dropout > 0`` and ``train``; it needs a ``"dropout"`` PRNG key.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.errors import UserError
from ssl_jax.precision import at_least_float32

LEAK = 0.2  # LeakyReLU slope of DCGAN's discriminator


def upsample_2x(x):
    """Nearest-neighbour upsampling ×2 of [B, H, W, C] maps.

    The generator upsamples and then convolves instead of using a stride-2 transposed
    convolution: the same resolution doubling without the checkerboard pattern that
    overlapping transposed kernels leave (Odena et al. 2016), and cheaper to differentiate
    on CPU.
    """
    return x.repeat(2, axis=1).repeat(2, axis=2)


def starting_size(size: int, stages: int) -> int:
    """The side of the generator's first map: ⌈size / 2^stages⌉ (its output is cropped)."""
    return -(-size // 2**stages)


def grid_max_pool(x, cells: int = 4):
    """[B, H, W, C] → [B, c·c·C]: the max over each cell of a c × c grid, c = min(cells, H, W).

    Cell i of a side of n pixels spans pixels ⌊i·n/c⌋ … ⌈(i+1)·n/c⌉ − 1 (adaptive pooling: cells
    overlap by a pixel where c does not divide n, and none is empty). The DCGAN paper's readout
    of a discriminator (Radford et al. 2016, §5.1) pools every layer's map so to a 4 × 4 grid,
    then flattens and concatenates them.
    """
    batch, height, width, _ = x.shape
    c = min(cells, height, width)

    def bins(n):
        return [(i * n // c, -(-(i + 1) * n // c)) for i in range(c)]

    rows = [x[:, a:b].max(axis=1) for a, b in bins(height)]  # each [B, W, C]
    grid = [jnp.stack([row[:, a:b].max(axis=1) for a, b in bins(width)], 1) for row in rows]
    return jnp.stack(grid, 1).reshape(batch, -1)


class Generator(nn.Module):
    """z [B, L] → images [B, H, W, C] in [0, 1]: a DCGAN generator for any ``image_shape``.

    Dense → [B, h₀, w₀, widths[0]] with h₀ = ⌈H / 2^n⌉, w₀ = ⌈W / 2^n⌉ (n = len(widths)),
    then for each further width: upsample ×2 → 3×3 conv → BN → ReLU; a last upsample ×2 and 3×3
    conv to C channels, a sigmoid, and a crop to H × W. 28×28 with widths (128, 64): 7×7×128
    → 14×14×64 → 28×28×1; 8×8 with (64, 32): 2×2×64 → 4×4×32 → 8×8×1.
    """

    image_shape: Sequence[int]
    widths: Sequence[int] = (128, 64)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, z, *, train: bool):
        height, width, channels = self.image_shape
        stages = len(self.widths)
        h0, w0 = starting_size(height, stages), starting_size(width, stages)

        def norm_relu(h):
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(h)
            return nn.relu(h)

        h = nn.Dense(h0 * w0 * self.widths[0], use_bias=False, dtype=self.dtype)(
            z.astype(self.dtype)
        )
        h = norm_relu(h.reshape(z.shape[0], h0, w0, self.widths[0]))
        for features in self.widths[1:]:
            h = nn.Conv(features, (3, 3), use_bias=False, dtype=self.dtype)(upsample_2x(h))
            h = norm_relu(h)
        logits = nn.Conv(channels, (3, 3), dtype=self.dtype)(upsample_2x(h))
        # Pixels in float32 (float64 in the exactness mode) whatever the compute dtype.
        return jax.nn.sigmoid(at_least_float32(logits[:, :height, :width]))


class ConvDiscriminator(nn.Module):
    """Images [B, H, W, C] → features [B, F]: the trunk of DCGAN's discriminator.

    For each width a 4×4 stride-2 convolution, LeakyReLU(0.2) and dropout; the features are
    the last map flattened (8×8 digits with widths (32, 64): 2·2·64 = 256 numbers; 28×28 with
    (64, 128): 7·7·128 = 6,272). Layers: ``"conv1"`` … ``"convK"`` and ``"features"``.
    """

    widths: Sequence[int] = (64, 128)
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool, return_layers: bool = False):
        layers = {}
        h = x.astype(self.dtype)
        for i, features in enumerate(self.widths, start=1):
            h = nn.Conv(features, (4, 4), strides=(2, 2), dtype=self.dtype)(h)
            h = nn.leaky_relu(h, LEAK)
            layers[f"conv{i}"] = h
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        features = h.reshape(h.shape[0], -1)
        layers["features"] = features
        return (features, layers) if return_layers else features

    def check_input_shape(self, image_shape):
        if len(image_shape) != 3 or min(image_shape[:2]) < 2 ** len(self.widths):
            raise UserError(
                f"a discriminator with {len(self.widths)} stride-2 stages needs images of at "
                f"least {2 ** len(self.widths)}×{2 ** len(self.widths)}×C, got "
                f"{tuple(image_shape)}; use fewer objective.discriminator_widths."
            )


class DiscriminatorHead(nn.Module):
    """Features [B, F] → logits [B]: one affine map (after dropout)."""

    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, features, *, train: bool):
        h = nn.Dropout(self.dropout, deterministic=not train)(features)
        return nn.Dense(1, dtype=self.dtype)(h)[:, 0]


class JointDiscriminatorHead(nn.Module):
    """(image features [B, F], z [B, L]) → logits [B]: BiGAN's D(x, z) after the image trunk.

    z goes through Dense → LeakyReLU (its own embedding, so that a short z is not drowned by
    thousands of image features), then the concatenation [features, embedding] through
    ``len(hidden_dims)`` Dense → LeakyReLU layers and a Dense to the logit, with dropout after
    each layer (as ALI's discriminator). Only this joint part can check that x and z belong
    together; the trunk sees x alone.
    """

    hidden_dims: Sequence[int] = (512,)
    z_dim: int = 256
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, features, z, *, train: bool):
        def dense_leaky(h, width):
            h = nn.leaky_relu(nn.Dense(width, dtype=self.dtype)(h), LEAK)
            return nn.Dropout(self.dropout, deterministic=not train)(h)

        z_embedding = dense_leaky(z.astype(self.dtype), self.z_dim)
        h = jnp.concatenate([features.astype(self.dtype), z_embedding], axis=-1)
        for width in self.hidden_dims:
            h = dense_leaky(h, width)
        return nn.Dense(1, dtype=self.dtype)(h)[:, 0]
