"""Linear autoencoder: a linear code trained by gradient descent on the squared error, = PCA.

Notes 004 (PCA and the linear autoencoder), 001 §3.2.3 (eq. 13). With an affine encoder
z = W_e x + b_e of k < D numbers and an affine decoder x̂ = W_d z + b_d, the loss

    L = (1/B) Σ_b ||x_b − x̂_b||²

has no spurious local minima, and at its minimum the decoder's columns span the top-k principal
subspace of the data (Baldi & Hornik 1989; the bias b_d takes the mean), with the error of
PCA's reconstruction, Σ_{i>k} λ_i (`ssl_jax.pca`). The basis inside the subspace is any
invertible mix of the principal directions: compare them with `ssl_jax.pca.principal_angles`.

Modules: ``encoder`` (``config.model`` must be ``name="linear"``; its ``features`` is k) and
``decoder`` (one Dense layer back to the image). The representation is the code z.
"""

import jax
import jax.numpy as jnp

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.models import MLPDecoder, build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, init_module
from ssl_jax.precision import at_least_float32

DEFAULTS = dict()


def squared_error(reconstruction, images):
    """(1/B) Σ_b ||x_b − x̂_b||², summed over pixels and averaged over the batch."""
    error = jnp.square(at_least_float32(images) - at_least_float32(reconstruction))
    return error.reshape(error.shape[0], -1).sum(axis=-1).mean()


@register_objective("linear_autoencoder")
def make(config, input_spec) -> Objective:
    image_spec = require(input_spec, "images", "linear_autoencoder", kind="images")
    if config.model.name != "linear":
        raise UserError(
            f"linear_autoencoder needs model.name='linear' (an affine code), got "
            f"{config.model.name!r}; for a nonlinear encoder use objective.name=autoencoder."
        )
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    # MLPDecoder without hidden layers is one affine map back to the pixels.
    decoder = MLPDecoder(image_spec.shape, hidden_dims=(), dtype=dtype)

    def reconstruct(params, images):
        code = encoder.apply({"params": params["encoder"]}, images, train=False)
        return decoder.apply({"params": params["decoder"]}, code, train=False)

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, dec_key = jax.random.split(key)
        enc_params, _ = init_module(encoder, enc_key, images)
        code = encoder.apply({"params": enc_params}, images, train=False)
        dec_params, _ = init_module(decoder, dec_key, code)
        return {"encoder": enc_params, "decoder": dec_params}, {}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del batch_stats, objective_state, key, step, group
        images = batch["images"]
        value = squared_error(reconstruct(params, images), images)
        return value, LossOutput({}, {"loss": value, "pixel_mse": value / images[0].size})

    def pictures(params, batch_stats, images, key):
        del batch_stats, key
        return {"reconstructions": jnp.stack([images, reconstruct(params, images)])}

    return Objective(name="linear_autoencoder", init=init, loss=loss, pictures=pictures)
