"""Deep autoencoder: an encoder, a low-dimensional code and a decoder trained to reconstruct.

Notes 001 §3.2.3 (eq. 13), 004 (deep autoencoders, Hinton & Salakhutdinov 2006), 000
(self-supervision by compression, ``min E||x − g(f(x))||²``).

Modules: ``encoder`` (the evaluated representation h = f(x)), ``bottleneck`` (a linear map to
the code c = W h + b of ``code_dim`` dimensions, the compression that rules out the identity
solution) and ``decoder`` (x̂ = g(c), an MLP producing pixel logits).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.models import MLPDecoder, build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, apply_module, init_module
from ssl_jax.precision import at_least_float32

RECONSTRUCTION_LOSSES = ("mse", "bernoulli")

# The config block ``objective.name=autoencoder`` switches to (ssl_jax.config.switch_block).
DEFAULTS = dict(code_dim=64, decoder_hidden_dims=(512,), reconstruction="bernoulli")


def reconstruction_loss(logits, images, kind):
    """Per-image reconstruction error summed over pixels, averaged over the batch.

    ``"mse"``: (1/B) Σ_b ||x_b − σ(ℓ_b)||², the squared error of notes 001 eq. 13.
    ``"bernoulli"``: (1/B) Σ_b Σ_p −[x log σ(ℓ) + (1 − x) log(1 − σ(ℓ))], the cross-entropy for
    pixel intensities in [0, 1] (004: binary units).

    Args:
      logits: [B, H, W, C] decoder outputs before the sigmoid.
      images: [B, H, W, C] targets in [0, 1].
    """
    logits = at_least_float32(logits)
    if kind == "mse":
        per_pixel = jnp.square(images - jax.nn.sigmoid(logits))
    else:
        per_pixel = optax.sigmoid_binary_cross_entropy(logits, images)
    return per_pixel.reshape(per_pixel.shape[0], -1).sum(axis=-1).mean()


@register_objective("autoencoder")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "autoencoder", kind="images")
    if cfg.reconstruction not in RECONSTRUCTION_LOSSES:
        raise UserError(
            f"objective.reconstruction must be one of {RECONSTRUCTION_LOSSES}, "
            f"got {cfg.reconstruction!r}."
        )
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    bottleneck = nn.Dense(cfg.code_dim, dtype=dtype)
    decoder = MLPDecoder(image_spec.shape, hidden_dims=tuple(cfg.decoder_hidden_dims), dtype=dtype)

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, code_key, dec_key = jax.random.split(key, 3)
        enc_params, enc_stats = init_module(encoder, enc_key, images)
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, images, train=False)
        code_params = bottleneck.init(code_key, h)["params"]
        dec_params, _ = init_module(decoder, dec_key, bottleneck.apply({"params": code_params}, h))
        params = {"encoder": enc_params, "bottleneck": code_params, "decoder": dec_params}
        return params, {"encoder": enc_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, key, step, group
        images = batch["images"]
        h, enc_stats = apply_module(encoder, params, batch_stats, "encoder", images, train=True)
        code = bottleneck.apply({"params": params["bottleneck"]}, h)
        logits = decoder.apply({"params": params["decoder"]}, code, train=True)
        value = reconstruction_loss(logits, images, cfg.reconstruction)
        mse = jnp.square(images - jax.nn.sigmoid(at_least_float32(logits))).mean()
        return value, LossOutput({"encoder": enc_stats}, {"loss": value, "pixel_mse": mse})

    def pictures(params, batch_stats, images, key):
        """Held-out images over their reconstructions (batch norm with its running averages)."""
        del key
        h, _ = apply_module(encoder, params, batch_stats, "encoder", images, train=False)
        code = bottleneck.apply({"params": params["bottleneck"]}, h)
        logits = decoder.apply({"params": params["decoder"]}, code, train=False)
        return {"reconstructions": jnp.stack([images, jax.nn.sigmoid(logits)])}

    return Objective(name="autoencoder", init=init, loss=loss, pictures=pictures)
