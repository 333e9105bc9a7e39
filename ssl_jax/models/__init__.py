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
from ssl_jax.models.audio import WaveformEncoder
from ssl_jax.models.cnn import LinearEncoder, MLPEncoder, SmallCNN
from ssl_jax.models.heads import MapDecoder, MLPDecoder, ProjectionHead
from ssl_jax.models.resnet import ResNet
from ssl_jax.models.text import TokenTransformer
from ssl_jax.models.vit import ViT

# name → (module class, its fixed settings); the config gives the other fields.
ENCODERS: dict[str, tuple[type[nn.Module], dict]] = {
    "linear": (LinearEncoder, {}),
    "mlp": (MLPEncoder, {}),
    "small_cnn": (SmallCNN, {}),
    "resnet18": (ResNet, dict(stage_sizes=(2, 2, 2, 2), block="basic")),
    "resnet34": (ResNet, dict(stage_sizes=(3, 4, 6, 3), block="basic")),
    "resnet50": (ResNet, dict(stage_sizes=(3, 4, 6, 3), block="bottleneck")),
    "vit_tiny": (ViT, dict(dim=192, depth=12, num_heads=3)),
    "vit_small": (ViT, dict(dim=384, depth=12, num_heads=6)),
    "token_transformer": (TokenTransformer, {}),
    # Waveforms [B, T] → frame sequences [B, T', D], not one vector (ssl_jax.models.audio).
    "conv1d_audio": (WaveformEncoder, {}),
}


def register_encoder(name: str, module_class: type[nn.Module], **fixed) -> None:
    """Makes `module_class` available as ``config.model.name = name``."""
    ENCODERS[name] = (module_class, fixed)


def build_encoder(model_config, input_spec=None, dtype=jnp.float32) -> nn.Module:
    """Builds the encoder named by ``model_config.name`` with the config's other fields.

    Args:
      model_config: a mapping with ``name`` and the module's constructor fields.
      input_spec: the `ssl_jax.data.spec.ArraySpec` of the input the encoder reads (or, for
        images, their (H, W, C) shape). When given, the encoder checks it accepts it
        (``check_input_shape``), and fields the spec determines and the config leaves out are
        filled from it: ``vocab_size`` of a token encoder, ``num_samples`` of an audio encoder.
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
    shape = None
    if input_spec is not None:
        shape = tuple(getattr(input_spec, "shape", input_spec))
        from_spec = {"vocab_size": getattr(input_spec, "num_values", None)}
        for key, value in from_spec.items():
            if key in allowed and key not in fields and key not in fixed and value:
                fields[key] = value
    encoder = module_class(**{**fixed, **fields}, dtype=dtype)
    if shape is not None:
        encoder.check_input_shape(shape)
    return encoder


__all__ = [
    "ENCODERS",
    "MLPDecoder",
    "MapDecoder",
    "MLPEncoder",
    "ProjectionHead",
    "ResNet",
    "SmallCNN",
    "ViT",
    "build_encoder",
    "register_encoder",
]
