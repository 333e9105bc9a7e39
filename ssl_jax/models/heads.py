"""Heads that sit on top of an encoder: projection MLPs, predictors and decoders."""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class ProjectionHead(nn.Module):
    """MLP g(h): (Dense → BN → ReLU) × len(hidden_dims), then Dense(output_dim) [→ BN].

    SimCLR uses one hidden layer and no final BN; SimSiam and MoCo v3 add a final BN
    (``last_bn=True``). A predictor (BYOL, SimSiam) is the same module with one hidden layer.
    """

    hidden_dims: Sequence[int] = (512,)
    output_dim: int = 128
    use_bn: bool = True
    last_bn: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h, *, train: bool):
        h = h.astype(self.dtype)
        for width in self.hidden_dims:
            h = nn.Dense(width, use_bias=not self.use_bn, dtype=self.dtype)(h)
            if self.use_bn:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(h)
            h = nn.relu(h)
        h = nn.Dense(self.output_dim, use_bias=not self.last_bn, dtype=self.dtype)(h)
        if self.last_bn:
            h = nn.BatchNorm(
                use_running_average=not train, momentum=0.9, use_scale=False, dtype=self.dtype
            )(h)
        return h


class MLPDecoder(nn.Module):
    """Maps a code [B, D] to image logits [B, H, W, C] through Dense → ReLU layers.

    Outputs are unbounded logits: a Bernoulli cross-entropy takes them as they are, a squared
    error applies a sigmoid first (see `ssl_jax.objectives.autoencoder`).
    """

    image_shape: Sequence[int]
    hidden_dims: Sequence[int] = (512,)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, code, *, train: bool):
        del train  # no batch statistics in the decoder
        h = code.astype(self.dtype)
        for width in self.hidden_dims:
            h = nn.relu(nn.Dense(width, dtype=self.dtype)(h))
        h = nn.Dense(int(np.prod(self.image_shape)), dtype=self.dtype)(h)
        return h.reshape(h.shape[0], *self.image_shape)


class MapDecoder(nn.Module):
    """Features [B, D] → a map [B, h, w, outputs]: Dense to h·w·width, then two convolutions
    (3×3 with ReLU, 1×1 to ``outputs``). Dense per-pixel predictions (colours, bins) from any
    encoder's pooled or flattened features."""

    map_shape: tuple[int, int]
    outputs: int
    width: int = 64
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, features, *, train: bool):
        del train
        h, w = self.map_shape
        x = nn.relu(nn.Dense(h * w * self.width, dtype=self.dtype)(features))
        x = x.reshape(features.shape[0], h, w, self.width)
        x = nn.relu(nn.Conv(self.width, (3, 3), dtype=self.dtype)(x))
        return nn.Conv(self.outputs, (1, 1), dtype=self.dtype)(x)
