"""Small encoders for small images: an MLP and a three-stage CNN for 28×28 digits."""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.errors import UserError


def _output(features, layers, return_layers):
    return (features, layers) if return_layers else features


def max_pool_2x2(x):
    """2×2 max-pooling with stride 2 (odd sizes padded at the end, like ``padding="SAME"``).

    Written as a reshape and a max rather than ``nn.max_pool``: the same values, but XLA's
    CPU backend differentiates a windowed max (select-and-scatter) several times more slowly
    than a plain reduction, and the pooling gradients were a large part of a small CNN's step.
    """
    batch, height, width, channels = x.shape
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=-jnp.inf)
    x = x.reshape(batch, (height + pad_h) // 2, 2, (width + pad_w) // 2, 2, channels)
    return x.max(axis=(2, 4))


class LinearEncoder(nn.Module):
    """Flattens the image and applies one affine map to ``features`` numbers: z = W x + b.

    The encoder of the linear autoencoder (`ssl_jax.objectives.linear_autoencoder`), whose
    optimum spans the principal subspace. Layers: ``"code"``.
    """

    features: int = 32
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool, return_layers: bool = False):
        del train  # no batch statistics
        h = nn.Dense(self.features, dtype=self.dtype, name="code")(
            x.reshape(x.shape[0], -1).astype(self.dtype)
        )
        return _output(h, {"code": h}, return_layers)

    def check_input_shape(self, image_shape):
        if len(image_shape) != 3:
            raise UserError(f"linear expects images (H, W, C), got shape {tuple(image_shape)}.")


class MLPEncoder(nn.Module):
    """Flattens the image and applies Dense → BatchNorm → ReLU blocks.

    ``batch_norm=False`` leaves the normalisation out, so that each example's features depend
    on that example alone (the contractive autoencoder differentiates them per example).
    Layers: ``"hidden1"`` … ``"hiddenK"``; the features are the last hidden layer.
    """

    hidden_dims: Sequence[int] = (512, 512)
    batch_norm: bool = True
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool, return_layers: bool = False):
        layers = {}
        h = x.reshape(x.shape[0], -1).astype(self.dtype)
        for i, width in enumerate(self.hidden_dims, start=1):
            h = nn.Dense(width, dtype=self.dtype, name=f"dense{i}")(h)
            if self.batch_norm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(h)
            h = nn.relu(h)
            layers[f"hidden{i}"] = h
        return _output(h, layers, return_layers)

    def check_input_shape(self, image_shape):
        if len(image_shape) != 3:
            raise UserError(f"mlp expects images (H, W, C), got shape {tuple(image_shape)}.")


class SmallCNN(nn.Module):
    """A CNN for 28×28 (or any ≥ 8×8) images: three stages of conv-BN-ReLU ×2 and 2×2 max-pool.

    28×28 → 14×14 → 7×7 → 4×4 with the default widths (32, 64, 128). ``pool="flatten"`` keeps
    the spatial layout of the last map as the feature vector (4·4·128 = 2048 for 28×28); on
    digits it gives clearly better kNN and linear probes than global average pooling
    (``pool="avg"``), which discards where a stroke is.

    ``batch_norm=False`` leaves the normalisation out (and gives the convolutions biases): each
    example's features then depend on that example alone, as the contractive autoencoder's
    per-example Jacobian needs.

    Layers: ``"stage1"``, ``"stage2"``, ``"stage3"`` (maps after pooling) and ``"features"``.
    """

    widths: Sequence[int] = (32, 64, 128)
    convs_per_stage: int = 2
    pool: str = "flatten"
    batch_norm: bool = True
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool, return_layers: bool = False):
        layers = {}
        h = x.astype(self.dtype)
        for stage, width in enumerate(self.widths, start=1):
            for _ in range(self.convs_per_stage):
                h = nn.Conv(width, (3, 3), use_bias=not self.batch_norm, dtype=self.dtype)(h)
                if self.batch_norm:
                    h = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(
                        h
                    )
                h = nn.relu(h)
            h = max_pool_2x2(h)
            layers[f"stage{stage}"] = h
        features = h.reshape(h.shape[0], -1) if self.pool == "flatten" else h.mean(axis=(1, 2))
        layers["features"] = features
        return _output(features, layers, return_layers)

    def check_input_shape(self, image_shape):
        if self.pool not in ("flatten", "avg"):
            raise UserError(f"small_cnn pool must be 'flatten' or 'avg', got {self.pool!r}.")
        if len(image_shape) != 3 or min(image_shape[:2]) < 2 ** len(self.widths):
            raise UserError(
                f"small_cnn with {len(self.widths)} stages needs images of at least "
                f"{2 ** len(self.widths)}×{2 ** len(self.widths)}×C, got {tuple(image_shape)}; "
                "use fewer widths (e.g. --config.model.widths='(32, 64)') or larger images."
            )
