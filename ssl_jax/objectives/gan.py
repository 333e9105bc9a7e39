"""GAN (DCGAN): a generator and a discriminator in two parameter groups, trained in turn.

Notes 003 (GANs: a generator maps noise to data, a discriminator tells data from its samples,
each trained against the other) and 001 §3.2 (representations from a GAN's discriminator).
With z ~ N(0, I) of ``latent_dim`` numbers, G(z) an image and D(x) a logit, each step first
updates D, then G against the updated D (Goodfellow et al. 2014; `ssl_jax.adversarial`):

    discriminator:  L_D = E_x[softplus(−D(x))] + E_z[softplus(D(G(z)))] + R1
    generator:      L_G = E_z[softplus(−D(G(z)))]          (the non-saturating loss)

or, with ``loss="hinge"``, L_D = E_x[max(0, 1 − D(x))] + E_z[max(0, 1 + D(G(z)))] + R1 and
L_G = −E_z[D(G(z))]. R1 = (γ/2)·E_x[‖∇_x D(x)‖²] on real images, with γ = ``r1_weight``
(0: off). ``dropout`` is the rate of dropout in D.

Modules and groups: ``generator`` (`ssl_jax.models.gan.Generator`), ``discriminator`` (the
convolutional trunk, `ConvDiscriminator`) and ``discriminator_head`` (to the logit). Groups
``discriminator`` = (discriminator, discriminator_head) and ``generator`` = (generator,), each
with its optimizer (``config.optim_groups.<group>``, else ``config.optim``). The generator's
batch-norm statistics are those of its own update (the discriminator's pass uses the batch's
statistics and keeps no averages). ``config.model`` is not used: the discriminator is the
network.

Representation: ``discriminator``, the DCGAN paper's readout (Radford et al. 2016, §5.1):
every convolution layer of the trunk max-pooled to a 4 × 4 grid (`grid_max_pool`), flattened
and concatenated (28×28 with widths (64, 128): 4·4·64 + 4·4·128 = 3,072 numbers). Pictures:
``samples`` of G and ``interpolations`` along straight lines between pairs of z.
"""

import jax
import jax.numpy as jnp

from ssl_jax.adversarial import adversarial_losses, discriminator_objective, real_probability
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.models.gan import ConvDiscriminator, DiscriminatorHead, Generator, grid_max_pool
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
    latent_dim=64,
    generator_widths=(128, 64),
    discriminator_widths=(64, 128),
    dropout=0.0,
    loss="non_saturating",
    r1_weight=0.0,
)

INTERPOLATION_STEPS = 8


def check_adversarial_config(cfg, name: str) -> None:
    """Refuses settings of a GAN objective that cannot work, in one line each."""
    adversarial_losses(cfg.loss)  # raises for an unknown loss
    if cfg.latent_dim < 1 or not cfg.generator_widths or not cfg.discriminator_widths:
        raise UserError(
            f"{name} needs objective.latent_dim ≥ 1 and non-empty generator_widths and "
            f"discriminator_widths, got latent_dim={cfg.latent_dim}, generator_widths="
            f"{tuple(cfg.generator_widths)}, "
            f"discriminator_widths={tuple(cfg.discriminator_widths)}."
        )
    if not 0.0 <= cfg.dropout < 1.0 or cfg.r1_weight < 0:
        raise UserError(
            f"{name} needs 0 ≤ objective.dropout < 1 and objective.r1_weight ≥ 0, got "
            f"dropout={cfg.dropout}, r1_weight={cfg.r1_weight}."
        )


def check_group(group: str, name: str) -> None:
    if group not in ("discriminator", "generator"):
        raise ValueError(f"{name} has groups 'discriminator' and 'generator', not {group!r}")


def sample_prior(key, batch: int, latent_dim: int, dtype):
    """z ~ N(0, I): [batch, latent_dim]."""
    return jax.random.normal(key, (batch, latent_dim), dtype)


def build_networks(cfg, image_spec, dtype):
    """The generator and the discriminator's trunk of ``cfg`` for images of ``image_spec``."""
    generator = Generator(tuple(image_spec.shape), widths=tuple(cfg.generator_widths), dtype=dtype)
    trunk = ConvDiscriminator(
        widths=tuple(cfg.discriminator_widths), dropout=cfg.dropout, dtype=dtype
    )
    trunk.check_input_shape(image_spec.shape)
    return generator, trunk


def generate(generator, params, batch_stats, z, *, train: bool):
    """G(z) and G's updated batch statistics (unchanged when not ``train``)."""
    return apply_module(generator, params, batch_stats, "generator", z, train=train)


def dcgan_readout(trunk, name: str = "discriminator") -> Representation:
    """The `Representation` of the DCGAN paper's readout of the trunk ``name``: each
    ``convK`` layer max-pooled to a 4 × 4 grid, flattened, concatenated in network order."""
    trunk_layers = module_representation(trunk, name).layers

    def fn(params, batch_stats, images):
        layers = trunk_layers(params, batch_stats, images)
        convs = [layers[f"conv{i}"] for i in range(1, len(trunk.widths) + 1)]
        return jnp.concatenate([grid_max_pool(h) for h in convs], axis=-1).astype(jnp.float32)

    return Representation(fn=fn, modules=(name,), layers=trunk_layers)


def interpolation_grid(decode, key, rows: int, latent_dim: int, dtype):
    """``decode`` along straight lines between ``rows`` pairs of prior samples:
    [rows, INTERPOLATION_STEPS, H, W, C]."""
    ends = sample_prior(key, 2 * rows, latent_dim, dtype)
    weights = jnp.linspace(0.0, 1.0, INTERPOLATION_STEPS, dtype=dtype)[None, :, None]
    lines = (1 - weights) * ends[:rows, None] + weights * ends[rows:, None]
    images = decode(lines.reshape(-1, latent_dim))
    return images.reshape(rows, INTERPOLATION_STEPS, *images.shape[1:])


@register_objective("gan")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "gan", kind="images")
    check_adversarial_config(cfg, "gan")
    dtype = jnp.dtype(config.compute_dtype)
    d_loss_fn, g_loss_fn = adversarial_losses(cfg.loss)
    generator, trunk = build_networks(cfg, image_spec, dtype)
    head = DiscriminatorHead(dropout=cfg.dropout, dtype=dtype)

    def init(key, sample_batch):
        images = sample_batch["images"]
        g_key, d_key, h_key = jax.random.split(key, 3)
        z = jnp.zeros((images.shape[0], cfg.latent_dim), dtype)
        g_params, g_stats = init_module(generator, g_key, z)
        d_params, _ = init_module(trunk, d_key, images)
        features = trunk.apply({"params": d_params}, images, train=False)
        params = {
            "generator": g_params,
            "discriminator": d_params,
            "discriminator_head": init_module(head, h_key, features)[0],
        }
        return params, {"generator": g_stats}, NoState()

    def discriminate(params, images, key):
        """D(images) in train mode: logits [B] (dropout drawn from ``key``)."""
        rngs = {"dropout": key}
        features = trunk.apply({"params": params["discriminator"]}, images, train=True, rngs=rngs)
        return head.apply({"params": params["discriminator_head"]}, features, train=True, rngs=rngs)

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step
        check_group(group, "gan")
        real = batch["images"].astype(dtype)
        z_key, dropout_key = jax.random.split(key)
        z = sample_prior(z_key, real.shape[0], cfg.latent_dim, dtype)
        fake, g_stats = generate(generator, params, batch_stats, z, train=True)
        fake = fake.astype(dtype)
        if group == "discriminator":
            # G's samples are given to D as data: L_D has no gradient with respect to G, so
            # D's update cannot move G whoever differentiates it. One pass over real and fake
            # together: D has no batch norm, so this is just batching.
            fake = jax.lax.stop_gradient(fake)
            value, metrics = discriminator_objective(
                d_loss_fn,
                lambda x: discriminate(params, x, dropout_key),
                real,
                fake,
                cfg.r1_weight,
            )
            return value, LossOutput({}, metrics)
        fake_logits = discriminate(params, fake, dropout_key)
        value = g_loss_fn(fake_logits)
        metrics = {"loss": value, "fake_probability": real_probability(fake_logits)}
        return value, LossOutput({"generator": g_stats}, metrics)

    def pictures(params, batch_stats, images, key):
        """Samples of G (2 rows of half the held-out count) and interpolations (8 lines of 8
        steps between pairs of z), G in inference mode."""

        def decode(z):
            return generate(generator, params, batch_stats, z, train=False)[0]

        n = max(2, images.shape[0] // 2 * 2)
        sample_key, line_key = jax.random.split(key)
        samples = decode(sample_prior(sample_key, n, cfg.latent_dim, dtype))
        return {
            "samples": samples.reshape(2, n // 2, *samples.shape[1:]),
            "interpolations": interpolation_grid(decode, line_key, 8, cfg.latent_dim, dtype),
        }

    groups = {"discriminator": ("discriminator", "discriminator_head"), "generator": ("generator",)}
    representations = {"discriminator": dcgan_readout(trunk)}
    return Objective(
        name="gan",
        init=init,
        loss=loss,
        param_groups=groups,
        representations=representations,
        pictures=pictures,
    )
