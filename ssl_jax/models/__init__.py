"""Encoders and heads, and `build_encoder`: a model config → a Flax Linen module.

Every encoder is called as ``encoder.apply(variables, images, train=..., return_layers=...)``
with ``images`` [B, H, W, C] float32 in [0, 1]. It returns features [B, D], or
``(features, {layer_name: activation})`` with ``return_layers=True``, the layers in network
order (used by similarity analysis and layer-wise probes).
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.errors import UserError, close_matches, unknown_name
from ssl_jax.models.cnn import MLPEncoder, SmallCNN
from ssl_jax.models.heads import MLPDecoder, ProjectionHead
from ssl_jax.models.resnet import ResNet
from ssl_jax.models.vit import ViT

# name → (module class, its fixed settings); the config gives the other fields.
ENCODERS: dict[str, tuple[type[nn.Module], dict]] = {
    "mlp": (MLPEncoder, {}),
    "small_cnn": (SmallCNN, {}),
    "resnet18": (ResNet, dict(stage_sizes=(2, 2, 2, 2), block="basic")),
    "resnet34": (ResNet, dict(stage_sizes=(3, 4, 6, 3), block="basic")),
    "resnet50": (ResNet, dict(stage_sizes=(3, 4, 6, 3), block="bottleneck")),
    "vit_tiny": (ViT, dict(dim=192, depth=12, num_heads=3)),
    "vit_small": (ViT, dict(dim=384, depth=12, num_heads=6)),
}


def register_encoder(name: str, module_class: type[nn.Module], **fixed) -> None:
    """Makes `module_class` available as ``config.model.name = name``."""
    ENCODERS[name] = (module_class, fixed)


def build_encoder(model_config, image_shape=None, dtype=jnp.float32) -> nn.Module:
    """Builds the encoder named by ``model_config.name`` with the config's other fields.

    Args:
      model_config: a mapping with ``name`` and the module's constructor fields.
      image_shape: (H, W, C) of the input; when given, the encoder checks it accepts it.
      dtype: compute dtype of activations (parameters stay float32).
    """
    fields = dict(model_config)
    name = fields.pop("name")
    if name not in ENCODERS:
        raise unknown_name("model", name, ENCODERS)
    module_class, fixed = ENCODERS[name]
    allowed = {f.name for f in dataclasses.fields(module_class)} - {"parent", "name", "dtype"}
    for key in fields:
        if key not in allowed:
            raise UserError(
                f"model {name!r} has no setting {key!r}.{close_matches(key, allowed)} "
                f"Settings: {', '.join(sorted(allowed))}."
            )
    encoder = module_class(**{**fixed, **fields}, dtype=dtype)
    if image_shape is not None:
        encoder.check_input_shape(tuple(image_shape))
    return encoder


__all__ = [
    "ENCODERS",
    "MLPDecoder",
    "MLPEncoder",
    "ProjectionHead",
    "ResNet",
    "SmallCNN",
    "ViT",
    "build_encoder",
    "register_encoder",
]
