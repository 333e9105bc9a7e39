"""ResNet-18/34/50 (He et al. 2016, "Deep Residual Learning"; notes 003 §1) as SSL encoders.

Two stems:

- ``stem="cifar"``: one 3×3 convolution with stride 1 and no max-pool, so a 32×32 image
  enters stage 1 at 32×32 (the SimCLR CIFAR variant).
- ``stem="imagenet"``: a 7×7 convolution with stride 2 and a 3×3 max-pool with stride 2
  (224×224 → 56×56 into stage 1).

Stages 1–4 have ``width × (1, 2, 4, 8)`` channels (64-128-256-512 at ``width=64``); stages 2–4
halve the resolution in their first block. ResNet-50 uses bottleneck blocks with 4× channel
expansion and puts the stride on the 3×3 convolution ("ResNet v1.5", as torchvision does).
With ``zero_init_residual`` the last batch norm of every residual branch starts with scale 0,
so every block starts as the identity (Goyal et al. 2017, "Accurate, Large Minibatch SGD").

Features: the global average of stage 4, [B, 8·width] for ResNet-18/34 and [B, 32·width] for
ResNet-50 (512 and 2048 at ``width=64``); no classifier.

Batch norm has no ``axis_name``: the trainer jits the global batch over a device mesh, so
batch statistics are already those of the global batch.
"""

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.errors import UserError
from ssl_jax.models.activations import relu

STEMS = ("cifar", "imagenet")

# Smallest image side each stem accepts: the side at which each of the network's stride-2
# layers (two in the ImageNet stem, three in stages 2–4) still halves a map of at least 2×2,
# so stage 4 ends at 1×1 without ever convolving a map smaller than its stride.
SMALLEST_SIDE = {"cifar": 8, "imagenet": 32}


def batch_norm(train: bool, dtype, zero_scale: bool = False, name=None) -> nn.BatchNorm:
    """Batch norm as in torchvision's ResNet (momentum 0.9, ε = 1e-5), statistics in float32.

    ``zero_scale`` starts γ at 0 (the last norm of a residual branch, see the module doc).
    """
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        dtype=dtype,
        scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones,
        name=name,
    )


class BasicBlock(nn.Module):
    """relu(x + BN(conv3×3(relu(BN(conv3×3(x)))))), ResNet-18/34; ``x`` projected when needed.

    Input [B, H, W, C] → output [B, H / strides, W / strides, features].
    """

    features: int
    strides: int = 1
    zero_init_residual: bool = True
    dtype: jnp.dtype = jnp.float32

    expansion = 1  # output channels = expansion × features

    @nn.compact
    def __call__(self, x, train: bool):
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
        y = conv(self.features, (3, 3), self.strides, padding=1)(x)
        y = relu(batch_norm(train, self.dtype)(y))
        y = conv(self.features, (3, 3), padding=1)(y)
        y = batch_norm(train, self.dtype, zero_scale=self.zero_init_residual)(y)
        return relu(_shortcut(x, y.shape, self.strides, train, self.dtype) + y)


class Bottleneck(nn.Module):
    """relu(x + BN(conv1×1 ×4(relu(BN(conv3×3(relu(BN(conv1×1(x))))))))), ResNet-50.

    Input [B, H, W, C] → output [B, H / strides, W / strides, 4·features].
    """

    features: int
    strides: int = 1
    zero_init_residual: bool = True
    dtype: jnp.dtype = jnp.float32

    expansion = 4

    @nn.compact
    def __call__(self, x, train: bool):
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
        y = relu(batch_norm(train, self.dtype)(conv(self.features, (1, 1))(x)))
        y = conv(self.features, (3, 3), self.strides, padding=1)(y)
        y = relu(batch_norm(train, self.dtype)(y))
        y = conv(self.features * self.expansion, (1, 1))(y)
        y = batch_norm(train, self.dtype, zero_scale=self.zero_init_residual)(y)
        return relu(_shortcut(x, y.shape, self.strides, train, self.dtype) + y)


def _shortcut(x, branch_shape, strides: int, train: bool, dtype):
    """The identity, or a strided 1×1 convolution + BN when the branch changes the shape.

    Called inside a block's compact ``__call__``, so its layers belong to that block.
    """
    if x.shape == branch_shape:
        return x
    x = nn.Conv(branch_shape[-1], (1, 1), strides, use_bias=False, dtype=dtype, name="shortcut")(x)
    return batch_norm(train, dtype, name="shortcut_norm")(x)


BLOCKS: dict[str, type[nn.Module]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """A ResNet encoder: [B, H, W, C] images in [0, 1] → features [B, 8·width·expansion].

    ``__call__(x, train=..., return_layers=True)`` also returns the named layers in network
    order: ``stem`` [B, H', W', width], ``stage1`` … ``stage4`` (resolution ÷1, ÷2, ÷4, ÷8 of
    the stem's), ``pool`` [B, D] (= the features).
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    block: str = "basic"  # "basic" (ResNet-18/34) | "bottleneck" (ResNet-50)
    stem: str = "cifar"  # "cifar" | "imagenet"
    width: int = 64  # channels of the stem and stage 1 (before bottleneck expansion)
    zero_init_residual: bool = True
    dtype: jnp.dtype = jnp.float32  # compute dtype; parameters and BN statistics stay float32

    @nn.compact
    def __call__(self, x, *, train: bool, return_layers: bool = False):
        self.check_settings()
        layers = {}
        x = _stem(x.astype(self.dtype), self.stem, self.width, train, self.dtype)
        layers["stem"] = x
        for stage, num_blocks in enumerate(self.stage_sizes, start=1):
            for index in range(1, num_blocks + 1):
                x = BLOCKS[self.block](
                    features=self.width * 2 ** (stage - 1),
                    strides=2 if stage > 1 and index == 1 else 1,
                    zero_init_residual=self.zero_init_residual,
                    dtype=self.dtype,
                    name=f"stage{stage}_block{index}",
                )(x, train)
            layers[f"stage{stage}"] = x
        features = x.mean(axis=(1, 2))
        layers["pool"] = features
        return (features, layers) if return_layers else features

    def check_settings(self):
        """Raises `UserError` for an unknown block or stem name."""
        if self.block not in BLOCKS:
            raise UserError(
                f"unknown resnet block {self.block!r}; set block to one of {sorted(BLOCKS)}."
            )
        if self.stem not in STEMS:
            raise UserError(
                f"unknown resnet stem {self.stem!r}; set --config.model.stem to one of "
                f"{list(STEMS)}."
            )

    def check_input_shape(self, image_shape: tuple[int, int, int]):
        """Raises `UserError` unless this ResNet takes [B, *image_shape] images (H, W, C)."""
        self.check_settings()
        smallest = SMALLEST_SIDE[self.stem]
        if len(image_shape) != 3 or min(image_shape[:2]) < smallest:
            hint = (
                "use stem='cifar' for small images (--config.model.stem=cifar)"
                if self.stem == "imagenet"
                else "use a smaller encoder (e.g. small_cnn) or upsample the images"
            )
            raise UserError(
                f"a ResNet with the {self.stem} stem needs images of at least "
                f"{smallest}×{smallest}×C, got shape {tuple(image_shape)}; {hint}."
            )


def _stem(x, stem: str, width: int, train: bool, dtype):
    """[B, H, W, C] → [B, H, W, width] (cifar) or [B, H/4, W/4, width] (imagenet)."""
    if stem == "cifar":
        x = nn.Conv(width, (3, 3), 1, padding=1, use_bias=False, dtype=dtype, name="stem_conv")(x)
        return relu(batch_norm(train, dtype, name="stem_norm")(x))
    x = nn.Conv(width, (7, 7), 2, padding=3, use_bias=False, dtype=dtype, name="stem_conv")(x)
    x = relu(batch_norm(train, dtype, name="stem_norm")(x))
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block="basic")
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="basic")
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="bottleneck")
