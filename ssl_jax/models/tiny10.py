"""Tiny-10: the 10-layer CNN of Kornblith et al. 2019 (appendix, "Tiny-10"), used for the
layer-correspondence sanity check of representation similarity metrics (notes 001 §2.2.3).

conv 3×3 16, conv 3×3 16, conv 3×3 32 stride 2, conv 3×3 32, conv 3×3 32, conv 3×3 64 stride 2,
conv 3×3 64 valid, conv 1×1 64 — each followed by batch norm and ReLU — then global average
pooling and a linear layer to the logits. On 28×28 inputs the maps are 28², 28², 14², 14², 14²,
7², 5², 5².
"""

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.errors import UserError

# (features, kernel size, stride, padding) of conv1 ... conv8.
TINY10_CONVS = (
    (16, 3, 1, "SAME"),
    (16, 3, 1, "SAME"),
    (32, 3, 2, "SAME"),
    (32, 3, 1, "SAME"),
    (32, 3, 1, "SAME"),
    (64, 3, 2, "SAME"),
    (64, 3, 1, "VALID"),
    (64, 1, 1, "SAME"),
)


class Tiny10(nn.Module):
    """Tiny-10 CNN for [B, H, W, C] images in [0, 1] (H, W >= 9 so the valid conv has room).

    Returns logits [B, num_classes], or ``(logits, layers)`` with ``return_layers=True``:
    ``layers`` maps ``"conv1"`` … ``"conv8"`` (NHWC maps after BN and ReLU), ``"pool"`` ([B, 64])
    and ``"logits"`` to their activations, in network order.
    """

    num_classes: int = 10
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool, return_layers: bool = False):
        layers = {}
        h = x.astype(self.dtype)
        for i, (features, size, stride, padding) in enumerate(TINY10_CONVS, start=1):
            h = nn.Conv(
                features,
                (size, size),
                strides=(stride, stride),
                padding=padding,
                use_bias=False,
                dtype=self.dtype,
                name=f"conv{i}",
            )(h)
            h = nn.BatchNorm(
                use_running_average=not train, momentum=0.9, dtype=self.dtype, name=f"bn{i}"
            )(h)
            h = nn.relu(h)
            layers[f"conv{i}"] = h
        h = jnp.mean(h, axis=(1, 2))
        layers["pool"] = h
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(h)
        layers["logits"] = logits
        return (logits, layers) if return_layers else logits

    def check_input_shape(self, image_shape):
        if len(image_shape) != 3 or min(image_shape[:2]) < 9:
            raise UserError(
                f"tiny10 needs images (H, W, C) of at least 9×9, got {tuple(image_shape)}."
            )
