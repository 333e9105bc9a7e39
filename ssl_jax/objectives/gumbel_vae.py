"""Gumbel-softmax VAE: a discrete latent of N categorical variables with K classes each, sampled
with the Gumbel-softmax relaxation at an annealed temperature.

Notes 004 (discrete latent codes: Gumbel-softmax, Jang et al. 2017, arXiv:1611.01144), 001 §3.2
and §4 (latent-variable models, the ELBO). The encoder (``config.model``) and a linear
``posterior`` head give logits ℓ [B, N, K] of q(y|x) = Π_n Categorical(softmax(ℓ_n)); a sample
y (`ssl_jax.quantize.gumbel_softmax_sample`) goes, flattened to N·K numbers, through an MLP
decoder to Bernoulli pixel logits. The loss is the negative ELBO with a uniform prior
p(y) = Π_n Uniform(K), per image in nats:

    L = −log p(x | y) + w_t Σ_n KL(q(y_n|x) ‖ Uniform(K)),   KL = Σ_k q_k log q_k + log K,
    y_n = softmax((ℓ_n + g_n) / τ_t),   g ~ Gumbel(0, 1),   τ_t = max(τ_min, τ_0 e^{−r t})

``hard``: the straight-through sample one_hot(argmax y_n) + y_n − sg[y_n], so the decoder sees
one-hot codes while the gradient is the soft sample's (Jang et al. §2.2). With soft samples the
reconstruction term is that of the relaxed distribution, so the logged ``elbo`` (−L) is the
discrete model's bound only as τ → 0 or with ``hard``. The KL is that of the categorical
distributions, in closed form (the paper's choice). Its weight w_t rises linearly from ~0 to 1
over ``kl_warmup_steps`` (0, the default: w = 1 throughout; `ssl_jax.latent.linear_warmup`).
Measured (docs/discrete_codes.md): on MNIST a warm-up let the logits saturate to one constant
class per variable within 100 steps (the KL at its maximum N log K, the code ignored), while at
full weight the code stayed in use; on 8×8 digits at full weight q(y|x) sits at the prior for
the first ~150 steps before it moves off it.

Logged: ``elbo`` (at w = 1), ``reconstruction``, ``kl``, ``kl_weight``, ``temperature`` and
``code_perplexity`` (exp of the entropy of the batch's most likely classes, averaged over the N
variables: K when every class is used equally).

Representations: ``probabilities`` (q(y|x), [N·K]: the discrete code's distribution) and
``encoder`` (the features the posterior head reads). Pictures: held-out images over their
reconstructions decoded from the most likely class of each variable, and samples decoded from
one-hot codes drawn from the uniform prior.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.latent import bernoulli_nll, linear_warmup
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
from ssl_jax.precision import at_least_float32
from ssl_jax.quantize import (
    annealed_temperature,
    categorical_kl_to_uniform,
    code_counts,
    codebook_perplexity,
    gumbel_softmax_sample,
)

DEFAULTS = dict(
    num_variables=20,
    num_classes=10,
    decoder_hidden_dims=(512,),
    hard=False,
    temperature=1.0,
    temperature_floor=0.5,
    temperature_decay=1e-3,
    kl_warmup_steps=0,
)


def check_settings(cfg) -> None:
    if cfg.num_variables < 1 or cfg.num_classes < 2:
        raise UserError(
            f"gumbel_vae needs objective.num_variables ≥ 1 and objective.num_classes ≥ 2, got "
            f"{cfg.num_variables} and {cfg.num_classes}."
        )
    if not 0 < cfg.temperature_floor <= cfg.temperature or cfg.temperature_decay < 0:
        raise UserError(
            "gumbel_vae needs 0 < objective.temperature_floor ≤ objective.temperature and "
            f"objective.temperature_decay ≥ 0, got {cfg.temperature_floor}, {cfg.temperature}, "
            f"{cfg.temperature_decay}."
        )


@register_objective("gumbel_vae")
def make(config, input_spec) -> Objective:
    # Fields a config leaves out take their defaults (configs written before a field existed).
    cfg = ml_collections.ConfigDict({**DEFAULTS, **config.objective.to_dict()})
    check_settings(cfg)
    image_spec = require(input_spec, "images", "gumbel_vae", kind="images")
    num_variables, num_classes = cfg.num_variables, cfg.num_classes
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    posterior = nn.Dense(num_variables * num_classes, dtype=dtype)
    decoder = MLPDecoder(image_spec.shape, hidden_dims=tuple(cfg.decoder_hidden_dims), dtype=dtype)

    def posterior_logits(params, h):
        logits = posterior.apply({"params": params["posterior"]}, h)
        return at_least_float32(logits).reshape(h.shape[0], num_variables, num_classes)

    def decode(params, codes):
        """[B, N, K] codes → pixel logits [B, H, W, C]."""
        flat = codes.reshape(codes.shape[0], -1).astype(dtype)
        return decoder.apply({"params": params["decoder"]}, flat, train=False)

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, post_key, dec_key = jax.random.split(key, 3)
        enc_params, enc_stats = init_module(encoder, enc_key, images)
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, images, train=False)
        post_params = posterior.init(post_key, h)["params"]
        codes = jnp.zeros((images.shape[0], num_variables * num_classes), dtype)
        dec_params, _ = init_module(decoder, dec_key, codes)
        params = {"encoder": enc_params, "posterior": post_params, "decoder": dec_params}
        return params, {"encoder": enc_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, group
        images = batch["images"]
        h, enc_stats = apply_module(encoder, params, batch_stats, "encoder", images, train=True)
        logits = posterior_logits(params, h)
        temperature = annealed_temperature(
            step, cfg.temperature, cfg.temperature_decay, cfg.temperature_floor
        )
        codes = gumbel_softmax_sample(key, logits, temperature, cfg.hard)
        reconstruction = bernoulli_nll(decode(params, codes), images).mean()
        kl = categorical_kl_to_uniform(logits).mean()
        kl_weight = linear_warmup(1.0, step, cfg.kl_warmup_steps)
        value = reconstruction + kl_weight * kl
        likeliest = jnp.argmax(logits, axis=-1)  # [B, N]
        per_variable = jax.vmap(
            lambda column: codebook_perplexity(code_counts(column, num_classes)), in_axes=1
        )(likeliest)
        metrics = {
            "loss": value,
            "elbo": -(reconstruction + kl),
            "reconstruction": reconstruction,
            "kl": kl,
            "temperature": temperature,
            "kl_weight": kl_weight,
            "code_perplexity": per_variable.mean(),
        }
        return value, LossOutput({"encoder": enc_stats}, metrics)

    def logits_of(params, batch_stats, images):
        variables = {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}
        return posterior_logits(params, encoder.apply(variables, images, train=False))

    def probabilities(params, batch_stats, images):
        probs = jax.nn.softmax(logits_of(params, batch_stats, images), axis=-1)
        return probs.reshape(probs.shape[0], -1).astype(jnp.float32)

    def pictures(params, batch_stats, images, key):
        """Held-out images over their reconstructions from the most likely code, and 2 rows of
        samples of the uniform prior."""
        images = images[: images.shape[0] // 2 * 2]
        n = images.shape[0]
        one_hot = lambda classes: jax.nn.one_hot(classes, num_classes)
        likeliest = jnp.argmax(logits_of(params, batch_stats, images), axis=-1)
        prior = jax.random.randint(key, (n, num_variables), 0, num_classes)
        pixels = lambda codes: jax.nn.sigmoid(at_least_float32(decode(params, codes)))
        return {
            "reconstructions": jnp.stack([images, pixels(one_hot(likeliest))]),
            "samples": pixels(one_hot(prior)).reshape(2, n // 2, *images.shape[1:]),
        }

    representations = {
        "probabilities": Representation(fn=probabilities, modules=("encoder", "posterior")),
        "encoder": module_representation(encoder),
    }
    return Objective(
        name="gumbel_vae",
        init=init,
        loss=loss,
        representations=representations,
        pictures=pictures,
    )
