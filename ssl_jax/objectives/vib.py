"""Variational information bottleneck (VIB): a stochastic code that keeps what predicts the
label and as little else of the input as β allows.

Notes 001 §4 (the information bottleneck, stochastic representations; Alemi et al. 2017). The
bottleneck seeks max I(Z; Y) − β I(Z; X). With an encoder p(z|x) = N(μ(x), diag σ²(x)), a
classifier q(y|z) and the prior r(z) = N(0, I), both informations have variational bounds,

    I(Z; Y) ≥ H(Y) − E_{x,y} E_{p(z|x)}[−log q(y|z)],   I(Z; X) ≤ E_x KL(p(z|x) ‖ r(z)),

so the objective minimises the bound

    L = E_{x,y} E_{p(z|x)}[−log q(y|z)] + β · E_x KL(p(z|x) ‖ N(0, I))

with one reparameterised sample z = μ + σ ⊙ ε per example (`ssl_jax.latent`) and the KL in
closed form. Logged: ``cross_entropy`` (nats), ``rate`` (the KL, the upper bound on I(Z; X) in
nats), ``train_acc`` (of the sampled z). β = 0 is a plain classifier with noise in its code;
raising β squeezes the code until it holds little more than the label (H(Y) = log 10 ≈ 2.3
nats on digits).

Modules: ``encoder`` (``config.model``), ``posterior`` (Dense to μ and log σ²) and
``classifier`` (Dense on z). Representations: ``mu`` and ``encoder``.
benchmarks/information_bottleneck.py reads the classifier at μ on held-out digits for the β
sweep of docs/compression.md.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.latent import gaussian_kl, linear_warmup, reparameterize, split_gaussian
from ssl_jax.models import build_encoder
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

DEFAULTS = dict(latent_dim=32, beta=1e-3, beta_warmup_steps=0, num_classes=10)


def vib_terms(logits, labels, mean, log_variance):
    """``(cross_entropy, rate)``, each averaged over the batch: E[−log q(y|z)] at the sampled z
    and KL(N(μ, σ²) ‖ N(0, I)), the bound on I(Z; X)."""
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels(
        at_least_float32(logits), labels
    ).mean()
    return cross_entropy, gaussian_kl(mean, log_variance).mean()


@register_objective("vib")
def make(config, input_spec) -> Objective:
    cfg = {**DEFAULTS, **dict(config.objective)}
    image_spec = require(input_spec, "images", "vib", kind="images")
    label_spec = require(input_spec, "labels", "vib", kind="label")
    if cfg["num_classes"] < label_spec.num_values:
        raise UserError(
            f"objective.num_classes is {cfg['num_classes']} but the labels go up to "
            f"{label_spec.num_values - 1}; set --config.objective.num_classes="
            f"{label_spec.num_values}."
        )
    if cfg["beta"] < 0 or cfg["latent_dim"] < 1:
        raise UserError(
            f"vib needs objective.beta ≥ 0 and objective.latent_dim ≥ 1, got "
            f"beta={cfg['beta']}, latent_dim={cfg['latent_dim']}."
        )
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    posterior = nn.Dense(2 * cfg["latent_dim"], dtype=dtype)
    classifier = nn.Dense(cfg["num_classes"], dtype=dtype)

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, post_key, cls_key = jax.random.split(key, 3)
        enc_params, enc_stats = init_module(encoder, enc_key, images)
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, images, train=False)
        z = jnp.zeros((images.shape[0], cfg["latent_dim"]), dtype)
        params = {
            "encoder": enc_params,
            "posterior": posterior.init(post_key, h)["params"],
            "classifier": classifier.init(cls_key, z)["params"],
        }
        return params, {"encoder": enc_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, group
        h, enc_stats = apply_module(
            encoder, params, batch_stats, "encoder", batch["images"], train=True
        )
        mean, log_variance = split_gaussian(posterior.apply({"params": params["posterior"]}, h))
        z = reparameterize(key, mean, log_variance)
        logits = classifier.apply({"params": params["classifier"]}, z)
        cross_entropy, rate = vib_terms(logits, batch["labels"], mean, log_variance)
        beta = linear_warmup(cfg["beta"], step, cfg["beta_warmup_steps"])
        value = cross_entropy + beta * rate
        metrics = {
            "loss": value,
            "cross_entropy": cross_entropy,
            "rate": rate,
            "beta": beta,
            "train_acc": jnp.mean(jnp.argmax(logits, -1) == batch["labels"]),
        }
        return value, LossOutput({"encoder": enc_stats}, metrics)

    def posterior_of(params, batch_stats, images):
        """(μ, log σ²) of p(z|x), batch norm with its running averages."""
        variables = {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}
        h = encoder.apply(variables, images, train=False)
        return split_gaussian(posterior.apply({"params": params["posterior"]}, h))

    def posterior_mean(params, batch_stats, images):
        return posterior_of(params, batch_stats, images)[0].astype(jnp.float32)

    representations = {
        "mu": Representation(fn=posterior_mean, modules=("encoder", "posterior")),
        "encoder": module_representation(encoder),
    }
    return Objective(name="vib", init=init, loss=loss, representations=representations)
