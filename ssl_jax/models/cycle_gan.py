"""The generator of CycleGAN: an image-to-image network, encoder → residual blocks → decoder.

Zhu et al. (2017, §4 and appendix 7.2) after Johnson et al. (2016), at the scale of small
images: a 3×3 convolution at full resolution, a 4×4 stride-2 convolution per further width
(the encoder half), ``residual_blocks`` residual blocks at the bottleneck, then per stride-2
stage a ×2 nearest upsampling and a 3×3 convolution (the decoder half, no checkerboard; see
`ssl_jax.models.gan.upsample_2x`) and a 3×3 convolution to the output channels, a sigmoid and a
crop to H × W. Every hidden convolution is followed by instance normalisation and ReLU, as in
the paper: each image is normalised by its own statistics, so a translation of one image does
not depend on the others in its batch and there are no running averages to keep.

28×28 with widths (32, 64) and 2 blocks: 28×28×32 → 14×14×64 → 2 blocks at 14×14×64 →
28×28×32 → 28×28×C. Named layers (``return_layers=True``): ``stem``, ``down1`` …, ``block1`` …,
``bottleneck`` (the encoder half's output, after the blocks) and ``up1`` ….
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.errors import UserError
from ssl_jax.models.gan import upsample_2x
from ssl_jax.precision import at_least_float32


class ResidualBlock(nn.Module):
    """x + IN(conv3×3(ReLU(IN(conv3×3(x))))): the bottleneck block of Johnson et al. (2016)."""

    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        width = x.shape[-1]
        h = nn.Conv(width, (3, 3), use_bias=False, dtype=self.dtype)(x)
        h = nn.relu(nn.InstanceNorm(dtype=self.dtype)(h))
        h = nn.Conv(width, (3, 3), use_bias=False, dtype=self.dtype)(h)
        return x + nn.InstanceNorm(dtype=self.dtype)(h)


class TranslationGenerator(nn.Module):
    """Images [B, H, W, C_in] → images [B, H, W, ``channels``] in [0, 1] (see the module)."""

    channels: int
    widths: Sequence[int] = (32, 64)
    residual_blocks: int = 2
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool = False, return_layers: bool = False):
        del train  # instance norm: the same computation in training and inference
        height, width = x.shape[1:3]
        layers = {}

        def conv_norm_relu(h, features, kernel, strides=1):
            h = nn.Conv(
                features, (kernel, kernel), strides=strides, use_bias=False, dtype=self.dtype
            )(h)
            return nn.relu(nn.InstanceNorm(dtype=self.dtype)(h))

        h = conv_norm_relu(x.astype(self.dtype), self.widths[0], 3)
        layers["stem"] = h
        for i, features in enumerate(self.widths[1:], start=1):
            h = conv_norm_relu(h, features, 4, strides=2)
            layers[f"down{i}"] = h
        for i in range(1, self.residual_blocks + 1):
            h = ResidualBlock(dtype=self.dtype)(h)
            layers[f"block{i}"] = h
        layers["bottleneck"] = h
        for i, features in enumerate(reversed(self.widths[:-1]), start=1):
            h = conv_norm_relu(upsample_2x(h), features, 3)
            layers[f"up{i}"] = h
        logits = nn.Conv(self.channels, (3, 3), dtype=self.dtype)(h)[:, :height, :width]
        # Pixels in float32 (float64 in the exactness mode) whatever the compute dtype.
        images = jax.nn.sigmoid(at_least_float32(logits))
        return (images, layers) if return_layers else images

    def check_input_shape(self, image_shape):
        stages = len(self.widths) - 1
        if len(image_shape) != 3 or min(image_shape[:2]) < 2**stages:
            raise UserError(
                f"a translation generator with {stages} stride-2 stages needs images of at "
                f"least {2**stages}×{2**stages}×C, got {tuple(image_shape)}; use fewer "
                "objective.generator_widths."
            )
