"""ResNet-18/34/50 (He et al. 2016) with a CIFAR stem or an ImageNet stem.

``stem="cifar"``: one 3×3 convolution, stride 1, no max-pool (32×32 inputs keep a 32×32 map
into stage 1). ``stem="imagenet"``: 7×7 convolution with stride 2 and a 3×3 max-pool with
stride 2. The last batch norm of every residual branch starts at zero (``zero_init_residual``)
so each block starts as the identity (Goyal et al. 2017). Features: global average pool of
stage 4, 512-d for ResNet-18/34 and 2048-d for ResNet-50 at ``width=64``.
"""

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.errors import UserError


def _norm(train, dtype, zero_init=False):
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        dtype=dtype,
        scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones,
    )


class BasicBlock(nn.Module):
    """Two 3×3 convolutions; a 1×1 projection shortcut when the shape changes."""

    features: int
    strides: int = 1
    zero_init_residual: bool = True
    dtype: jnp.dtype = jnp.float32
    expansion = 1

    @nn.compact
    def __call__(self, x, train: bool):
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
        y = conv(self.features, (3, 3), self.strides, padding=1)(x)
        y = nn.relu(_norm(train, self.dtype)(y))
        y = conv(self.features, (3, 3), padding=1)(y)
        y = _norm(train, self.dtype, self.zero_init_residual)(y)
        if x.shape != y.shape:
            x = conv(self.features, (1, 1), self.strides, name="shortcut_conv")(x)
            x = _norm(train, self.dtype)(x)
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (with the stride), 1×1 expand ×4; projection shortcut when needed."""

    features: int
    strides: int = 1
    zero_init_residual: bool = True
    dtype: jnp.dtype = jnp.float32
    expansion = 4

    @nn.compact
    def __call__(self, x, train: bool):
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
        y = nn.relu(_norm(train, self.dtype)(conv(self.features, (1, 1))(x)))
        y = conv(self.features, (3, 3), self.strides, padding=1)(y)
        y = nn.relu(_norm(train, self.dtype)(y))
        y = conv(self.features * 4, (1, 1))(y)
        y = _norm(train, self.dtype, self.zero_init_residual)(y)
        if x.shape != y.shape:
            x = conv(self.features * 4, (1, 1), self.strides, name="shortcut_conv")(x)
            x = _norm(train, self.dtype)(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """A ResNet encoder. Layers: ``stem``, ``stage1`` … ``stage4``, ``pool``."""

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    block: str = "basic"  # basic | bottleneck
    stem: str = "cifar"  # cifar | imagenet
    width: int = 64
    zero_init_residual: bool = True
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool, return_layers: bool = False):
        block = {"basic": BasicBlock, "bottleneck": Bottleneck}[self.block]
        layers = {}
        x = x.astype(self.dtype)
        if self.stem == "imagenet":
            x = nn.Conv(self.width, (7, 7), 2, padding=3, use_bias=False, dtype=self.dtype)(x)
            x = nn.relu(_norm(train, self.dtype)(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        else:
            x = nn.Conv(self.width, (3, 3), 1, padding=1, use_bias=False, dtype=self.dtype)(x)
            x = nn.relu(_norm(train, self.dtype)(x))
        layers["stem"] = x
        for stage, num_blocks in enumerate(self.stage_sizes):
            for index in range(num_blocks):
                strides = 2 if stage > 0 and index == 0 else 1
                x = block(
                    self.width * 2**stage,
                    strides,
                    zero_init_residual=self.zero_init_residual,
                    dtype=self.dtype,
                )(x, train)
            layers[f"stage{stage + 1}"] = x
        features = x.mean(axis=(1, 2))
        layers["pool"] = features
        return (features, layers) if return_layers else features

    def check_input_shape(self, image_shape):
        if self.block not in ("basic", "bottleneck"):
            raise UserError(f"resnet block must be 'basic' or 'bottleneck', got {self.block!r}.")
        if self.stem not in ("cifar", "imagenet"):
            raise UserError(f"resnet stem must be 'cifar' or 'imagenet', got {self.stem!r}.")
        smallest = 32 if self.stem == "imagenet" else 8
        if len(image_shape) != 3 or min(image_shape[:2]) < smallest:
            raise UserError(
                f"a ResNet with the {self.stem} stem needs images of at least "
                f"{smallest}×{smallest}×C, got {tuple(image_shape)}; use stem='cifar' for small "
                "images (--config.model.stem=cifar)."
            )


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block="basic")
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="basic")
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="bottleneck")
