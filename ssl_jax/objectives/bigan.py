"""BiGAN / ALI: an encoder, a generator and a discriminator of (image, code) pairs.

Notes 001 §3.2 (adversarial training of latent-variable models learns representations:
BiGAN, Donahue et al. 2017; ALI, Dumoulin et al. 2017) and 003 (GANs). The encoder E maps an
image to a code, the generator G a code z ~ N(0, I) to an image, and the discriminator D
scores pairs: data pairs (x, E(x)) are "real", generated pairs (G(z), z) "fake". D can only be
fooled when the two joint distributions agree, which makes E invert G (Donahue et al. 2017,
§3): the encoder learns the latent factors of the data without ever seeing a label or a
reconstruction loss. Each step updates D, then E and G together (`ssl_jax.adversarial`):

    discriminator:      L_D   = E_x[softplus(−D(x, E(x)))] + E_z[softplus(D(G(z), z))] + R1
    encoder+generator:  L_E,G = E_z[softplus(−D(G(z), z))] + E_x[softplus(D(x, E(x)))]

(the non-saturating game with the labels swapped; ``loss="hinge"`` for the hinge game). R1 =
(γ/2)·E_x[‖∇_x D(x, E(x))‖² + ‖∇_e D(x, e)|_{e=E(x)}‖²] on the data pairs, γ = ``r1_weight``.

What keeps it learning. Without a penalty the joint discriminator wins within a few dozen
steps (on MNIST its loss falls to 0.004 by step 20): it rejects every generated pair, and the
encoder's gradient, which comes only through D, carries nothing about the digits (after 150
steps on digits the code's kNN is at its random-init level). The defaults:

- the R1 penalty, γ = ``r1_weight`` = 3 (Mescheder et al. 2018): D's input gradient on data
  pairs is kept small, so D cannot sharpen into a confident rejector and the game stays near
  its equilibrium (D's mean probability about 0.6 on data pairs and 0.4 on generated ones).
  This alone made the difference (docs/adversarial.md: the code's held-out kNN 0.91 / 0.88 at
  seeds 0 / 1 against 0.79 / 0.81 without it).
- ``dropout`` = 0: ALI's dropout in D did not prevent the collapse without R1 and added
  nothing with it.
- Adam with β₁ = 0.5 (DCGAN's setting) in both groups, the discriminator at a rate no lower
  than the encoder's and generator's (the configs: 4×, the two-time-scale rule of Heusel et
  al. 2017; a discriminator 4× slower learned far less).

Modules: ``encoder`` (``config.model``) and ``to_latent`` (Dense to ``latent_dim``), together
E; ``generator``; ``discriminator`` (the image trunk, `ssl_jax.models.gan.ConvDiscriminator`)
and ``joint_discriminator`` (`JointDiscriminatorHead` over the trunk's features and z). Groups
``discriminator`` = (discriminator, joint_discriminator) and ``generator`` = (generator,
encoder, to_latent). Batch-norm statistics of E and G are those of the second update.

Representations: ``encoder`` (the features of ``config.model``) and ``code`` (E(x), the
``latent_dim`` numbers that invert G). Pictures: ``samples`` G(z), ``reconstructions`` (held-out
images over G(E(x))) and ``interpolations`` between the codes of pairs of held-out images.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.adversarial import (
    adversarial_losses,
    bidirectional_generator_loss,
    r1_penalty,
    real_probability,
)
from ssl_jax.data.spec import require
from ssl_jax.models import build_encoder
from ssl_jax.models.gan import JointDiscriminatorHead
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
from ssl_jax.objectives.gan import (
    INTERPOLATION_STEPS,
    build_networks,
    check_adversarial_config,
    check_group,
    generate,
    sample_prior,
)

DEFAULTS = dict(
    latent_dim=32,
    generator_widths=(128, 64),
    discriminator_widths=(64, 128),
    joint_hidden_dims=(512,),
    z_embedding_dim=256,
    dropout=0.0,
    loss="non_saturating",
    r1_weight=3.0,
)


@register_objective("bigan")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "bigan", kind="images")
    check_adversarial_config(cfg, "bigan")
    dtype = jnp.dtype(config.compute_dtype)
    d_loss_fn, g_loss_fn = adversarial_losses(cfg.loss)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    to_latent = nn.Dense(cfg.latent_dim, dtype=dtype)
    generator, trunk = build_networks(cfg, image_spec, dtype)
    joint = JointDiscriminatorHead(
        hidden_dims=tuple(cfg.joint_hidden_dims),
        z_dim=cfg.z_embedding_dim,
        dropout=cfg.dropout,
        dtype=dtype,
    )

    def init(key, sample_batch):
        images = sample_batch["images"]
        e_key, l_key, g_key, d_key, j_key = jax.random.split(key, 5)
        e_params, e_stats = init_module(encoder, e_key, images)
        h = encoder.apply({"params": e_params, "batch_stats": e_stats}, images, train=False)
        z = jnp.zeros((images.shape[0], cfg.latent_dim), dtype)
        g_params, g_stats = init_module(generator, g_key, z)
        d_params, _ = init_module(trunk, d_key, images)
        features = trunk.apply({"params": d_params}, images, train=False)
        params = {
            "encoder": e_params,
            "to_latent": to_latent.init(l_key, h)["params"],
            "generator": g_params,
            "discriminator": d_params,
            "joint_discriminator": init_module(joint, j_key, features, z)[0],
        }
        return params, {"encoder": e_stats, "generator": g_stats}, NoState()

    def encode(params, batch_stats, images, *, train: bool):
        """E(x) = to_latent(encoder(x)): codes [B, latent_dim] and the encoder's statistics."""
        h, e_stats = apply_module(encoder, params, batch_stats, "encoder", images, train=train)
        return to_latent.apply({"params": params["to_latent"]}, h), e_stats

    def discriminate(params, images, codes, key):
        """D(x, z) in train mode: logits [B] (dropout drawn from ``key``)."""
        rngs = {"dropout": key}
        features = trunk.apply({"params": params["discriminator"]}, images, train=True, rngs=rngs)
        return joint.apply(
            {"params": params["joint_discriminator"]}, features, codes, train=True, rngs=rngs
        )

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step
        check_group(group, "bigan")
        real = batch["images"].astype(dtype)
        z_key, dropout_key = jax.random.split(key)
        z = sample_prior(z_key, real.shape[0], cfg.latent_dim, dtype)
        codes, e_stats = encode(params, batch_stats, real, train=True)
        fake, g_stats = generate(generator, params, batch_stats, z, train=True)
        if group == "discriminator":  # E's codes and G's samples are D's data: no gradient
            codes, fake = jax.lax.stop_gradient((codes, fake))
        # Real pairs (x, E(x)) and fake pairs (G(z), z) in one pass of D (no batch norm in D).
        logits = discriminate(
            params,
            jnp.concatenate([real, fake.astype(dtype)]),
            jnp.concatenate([codes, z]),
            dropout_key,
        )
        real_logits, fake_logits = jnp.split(logits, 2)
        metrics = {
            "real_probability": real_probability(real_logits),
            "fake_probability": real_probability(fake_logits),
        }
        if group == "discriminator":
            adversarial = d_loss_fn(real_logits, fake_logits)
            r1 = jnp.zeros((), adversarial.dtype)
            if cfg.r1_weight:
                r1 = r1_penalty(
                    lambda pair: discriminate(params, *pair, dropout_key),
                    (real, codes),
                    cfg.r1_weight,
                )
            value = adversarial + r1
            metrics.update(loss=value, adversarial=adversarial, r1=r1)
            return value, LossOutput({}, metrics)
        value = bidirectional_generator_loss(g_loss_fn, real_logits, fake_logits)
        # How far G(E(x)) is from x (mean squared error per pixel): BiGAN never trains it
        # directly, and it falls only as E comes to invert G.
        recon, _ = generate(generator, params, batch_stats, codes, train=True)
        metrics.update(
            loss=value,
            code_std=jnp.std(codes),
            reconstruction_error=jax.lax.stop_gradient(jnp.mean(jnp.square(recon - real))),
        )
        return value, LossOutput({"encoder": e_stats, "generator": g_stats}, metrics)

    def code(params, batch_stats, images):
        return encode(params, batch_stats, images, train=False)[0].astype(jnp.float32)

    def pictures(params, batch_stats, images, key):
        """Held-out images over G(E(x)), samples G(z), and G along straight lines between the
        codes E(x) of pairs of held-out images; every network in inference mode."""
        images = images[: images.shape[0] // 2 * 2]
        n, half = images.shape[0], images.shape[0] // 2

        def decode(z):
            return generate(generator, params, batch_stats, z.astype(dtype), train=False)[0]

        codes = code(params, batch_stats, images)
        samples = decode(sample_prior(key, n, cfg.latent_dim, dtype))
        weights = jnp.linspace(0.0, 1.0, INTERPOLATION_STEPS)[None, :, None]
        lines = (1 - weights) * codes[:half, None] + weights * codes[half:, None]
        interpolations = decode(lines.reshape(-1, cfg.latent_dim))
        return {
            "reconstructions": jnp.stack([images, decode(codes)]),
            "samples": samples.reshape(2, half, *images.shape[1:]),
            "interpolations": interpolations.reshape(half, INTERPOLATION_STEPS, *images.shape[1:]),
        }

    groups = {
        "discriminator": ("discriminator", "joint_discriminator"),
        "generator": ("generator", "encoder", "to_latent"),
    }
    representations = {
        "encoder": module_representation(encoder),
        "code": Representation(fn=code, modules=("encoder", "to_latent")),
    }
    return Objective(
        name="bigan",
        init=init,
        loss=loss,
        param_groups=groups,
        representations=representations,
        pictures=pictures,
    )
