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

ENCODERS: dict[str, type[nn.Module]] = {
    "mlp": MLPEncoder,
    "small_cnn": SmallCNN,
}


def register_encoder(name: str, module_class: type[nn.Module]) -> None:
    """Makes `module_class` available as ``config.model.name = name``."""
    ENCODERS[name] = module_class


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
    module_class = ENCODERS[name]
    allowed = {f.name for f in dataclasses.fields(module_class)} - {"parent", "name", "dtype"}
    for key in fields:
        if key not in allowed:
            raise UserError(
                f"model {name!r} has no setting {key!r}.{close_matches(key, allowed)} "
                f"Settings: {', '.join(sorted(allowed))}."
            )
    encoder = module_class(**fields, dtype=dtype)
    if image_shape is not None:
        encoder.check_input_shape(tuple(image_shape))
    return encoder


__all__ = [
    "ENCODERS",
    "MLPDecoder",
    "MLPEncoder",
    "ProjectionHead",
    "SmallCNN",
    "build_encoder",
    "register_encoder",
]
