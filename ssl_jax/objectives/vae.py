"""Variational autoencoder and β-VAE: an encoder to a Gaussian posterior, a decoder, the ELBO.

Notes 001 §4 (the VAE and its ELBO), 004 (VAE, β-VAE). For an image x the encoder gives the
posterior q(z|x) = N(μ(x), diag σ²(x)) over ``latent_dim`` numbers, z = μ + σ ⊙ ε is its
reparameterised sample, and the decoder gives Bernoulli pixel logits. The loss is the negative
ELBO with the KL weighted by β (Higgins et al. 2017):

    L = E_q[−log p(x|z)] + β_t · KL(q(z|x) ‖ N(0, I)),   ELBO = −E_q[−log p(x|z)] − KL ≤ log p(x)

with one sample of z per image and the KL in closed form (`ssl_jax.latent.gaussian_kl`).
β = 1 is the VAE; β > 1 trades reconstruction for a more factorised code. β_t rises linearly
to β over ``beta_warmup_steps`` (0: constant). Logged per image, in nats: ``elbo`` (at β = 1,
whatever β_t), ``reconstruction``, ``kl``, and ``active_units`` (dimensions whose μ varies).

``binarize``: train on x ~ Bernoulli(pixel intensity), drawn afresh each step (dynamic
binarisation, the setting of the published MNIST likelihoods); otherwise the grey levels
themselves are the targets of the cross-entropy.

Modules: ``encoder`` (``config.model``), ``posterior`` (Dense to 2·latent_dim: μ and log σ²)
and ``decoder`` (an MLP to pixel logits). Representations: ``mu`` (the posterior mean, the
VAE's code) and ``encoder`` (the features the posterior head reads).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.latent import (
    active_units,
    bernoulli_nll,
    gaussian_kl,
    linear_warmup,
    reparameterize,
    split_gaussian,
)
from ssl_jax.models import MLPDecoder, build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import (
    LossOutput,
    NoState,
    Objective,
    Representation,
    apply_module,
    init_module,
    module_representation,
)

DEFAULTS = dict(
    latent_dim=16, decoder_hidden_dims=(512,), beta=1.0, beta_warmup_steps=0, binarize=False
)


@register_objective("vae")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "vae", kind="images")
    if cfg.beta < 0 or cfg.latent_dim < 1:
        raise UserError(
            f"vae needs objective.beta ≥ 0 and objective.latent_dim ≥ 1, got beta={cfg.beta}, "
            f"latent_dim={cfg.latent_dim}."
        )
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    posterior = nn.Dense(2 * cfg.latent_dim, dtype=dtype)
    decoder = MLPDecoder(image_spec.shape, hidden_dims=tuple(cfg.decoder_hidden_dims), dtype=dtype)

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, post_key, dec_key = jax.random.split(key, 3)
        enc_params, enc_stats = init_module(encoder, enc_key, images)
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, images, train=False)
        post_params = posterior.init(post_key, h)["params"]
        z = jnp.zeros((images.shape[0], cfg.latent_dim), dtype)
        dec_params, _ = init_module(decoder, dec_key, z)
        params = {"encoder": enc_params, "posterior": post_params, "decoder": dec_params}
        return params, {"encoder": enc_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, group
        images = batch["images"]
        binarize_key, sample_key = jax.random.split(key)
        if cfg.binarize:
            images = jax.random.bernoulli(binarize_key, images).astype(images.dtype)
        h, enc_stats = apply_module(encoder, params, batch_stats, "encoder", images, train=True)
        mean, log_variance = split_gaussian(posterior.apply({"params": params["posterior"]}, h))
        z = reparameterize(sample_key, mean, log_variance)
        logits = decoder.apply({"params": params["decoder"]}, z, train=True)
        reconstruction = bernoulli_nll(logits, images).mean()
        kl = gaussian_kl(mean, log_variance).mean()
        beta = linear_warmup(cfg.beta, step, cfg.beta_warmup_steps)
        value = reconstruction + beta * kl
        metrics = {
            "loss": value,
            "elbo": -(reconstruction + kl),
            "reconstruction": reconstruction,
            "kl": kl,
            "beta": beta,
            "active_units": active_units(mean),
        }
        return value, LossOutput({"encoder": enc_stats}, metrics)

    def posterior_mean(params, batch_stats, images):
        variables = {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}
        h = encoder.apply(variables, images, train=False)
        mean, _ = split_gaussian(posterior.apply({"params": params["posterior"]}, h))
        return mean.astype(jnp.float32)

    def pictures(params, batch_stats, images, key):
        """Held-out images over their reconstructions (decoded at μ), samples of the prior,
        and decodings along straight lines between the μ of pairs of images."""
        images = images[: images.shape[0] // 2 * 2]  # pairs for the interpolations
        mean = posterior_mean(params, batch_stats, images)
        decode = lambda z: jax.nn.sigmoid(
            decoder.apply({"params": params["decoder"]}, z.astype(dtype), train=False)
        )
        n = images.shape[0]
        samples = decode(jax.random.normal(key, (n, cfg.latent_dim)))
        half = n // 2
        weights = jnp.linspace(0.0, 1.0, 8)[None, :, None]
        lines = (1 - weights) * mean[:half, None] + weights * mean[half : 2 * half, None]
        interpolations = decode(lines.reshape(-1, cfg.latent_dim))
        return {
            "reconstructions": jnp.stack([images, decode(mean)]),
            "samples": samples.reshape(2, n // 2, *images.shape[1:]),
            "interpolations": interpolations.reshape(half, 8, *images.shape[1:]),
        }

    representations = {
        "mu": Representation(fn=posterior_mean, modules=("encoder", "posterior")),
        "encoder": module_representation(encoder),
    }
    return Objective(
        name="vae", init=init, loss=loss, representations=representations, pictures=pictures
    )
