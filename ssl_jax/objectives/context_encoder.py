"""Context encoder: inpaint a hidden region of the image from its context (Pathak et al. 2016).

Notes 002 §2.2 (图像修复, inpainting: hide part of the input and predict it; the loss is "L2
loss + adversarial loss") and 001 §3.3.1 (3) (上下文编码器: masking contiguous image regions
and training the model to fill them gives transferable features). With M̂ the binary mask of
the hole (1 inside it) and F the encoder–decoder, notes 002 §2.2 give

    L_rec = ‖M̂ ⊙ (x − F((1 − M̂) ⊙ x))‖²₂
    L_adv = max_D E_x[log D(x) + log(1 − D(F((1 − M̂) ⊙ x)))]

and the objective is their weighted sum, L = λ_rec·L_rec + λ_adv·L_adv. The notes write the
two terms without numbers; the weights are the paper's (Pathak et al. 2016, §3.2, the joint
loss; λ_rec = 0.999 and λ_adv = 0.001 in its experiments and code), the defaults
``reconstruction_weight`` and ``adversarial_weight``. Here:

- F's input is (1 − M̂) ⊙ x: the hole's pixels are set to 0 before the encoder sees them
  (`masked_input`), so its content can reach the loss only as the target of L_rec.
- L_rec counts the hole alone, as a mean over the hidden values rather than a sum:
  Σ M̂ (x − F)² / Σ M̂ over the batch and channels (`hole_reconstruction_loss`), the
  per-pixel mean squared error of the paper's code, which its weights were set against. F's
  output outside the hole is discarded.
- D sees whole images: the data x, and F's prediction pasted into the hole of its own
  context, x̂ = (1 − M̂) ⊙ x + M̂ ⊙ F((1 − M̂) ⊙ x) (`fill_hole`). Real and fake share every
  pixel outside the hole, so D can judge only the hole and its border — the paper's D on the
  predicted region, for holes of any shape and position.
- Each step updates D with L_D = E[softplus(−D(x))] + E[softplus(D(x̂))] (+ R1, γ =
  ``r1_weight``), then the inpainter with

      L_F = λ_rec · L_rec + λ_adv · E[softplus(−D(x̂))]

  (the non-saturating generator loss of `ssl_jax.adversarial`; ``loss="hinge"`` for the hinge
  game). ``adversarial_weight=0`` is the reconstruction-only context encoder (the paper's
  feature-learning runs: its AlexNet diverged with the joint loss).

Holes (`ssl_jax.masks`): ``region="random"`` (the default), per image the union of
``random_regions`` squares, each with a side drawn uniformly between ``random_region_size``
fractions of the image side and a uniform position inside the image (the paper's random
blocks); ``region="central"``, the centre square of side ``region_size`` × the image side (0.5:
14 of 28, 16 of 32, 4 of 8; the paper's 64 of 128), the same in every image. Random holes are
the default for learning features: Pathak et al. (§3.3) found that a fixed central hole teaches
low-level features that latch onto the hole's boundary and transfer poorly to whole images;
measured here (docs/inpainting.md), on 8 × 8 digits the central hole's encoder fell below
random init at one of two seeds, and random holes beat it at both.

Modules and groups: ``encoder`` (``config.model``, the representation read out), ``to_grid``
(Dense from its features to a grid of a quarter of the image's side, the paper's bottleneck
between encoder and decoder) and ``decoder`` (`ssl_jax.models.ConvDecoder`, pixel logits, a
sigmoid to [0, 1]) form the group ``generator``; ``discriminator`` (`ConvDiscriminator`) and
``discriminator_head`` the group ``discriminator``. Pictures: ``inpaintings``, held-out images
with the hole (shown grey), the hole filled by F, and the originals.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.adversarial import adversarial_losses, discriminator_objective, real_probability
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.masks import central_region_mask, random_region_masks
from ssl_jax.models import build_encoder
from ssl_jax.models.conv_decoder import ConvDecoder
from ssl_jax.models.gan import ConvDiscriminator, DiscriminatorHead, starting_size
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import (
    LossOutput,
    NoState,
    Objective,
    apply_module,
    init_module,
    module_representation,
)
from ssl_jax.objectives.gan import check_group
from ssl_jax.precision import at_least_float32

REGIONS = ("central", "random")

DEFAULTS = dict(
    region="random",
    region_size=0.5,
    random_regions=2,
    random_region_size=(0.25, 0.5),
    reconstruction_weight=0.999,
    adversarial_weight=0.001,
    decoder_width=64,
    discriminator_widths=(64, 128),
    loss="non_saturating",
    r1_weight=0.0,
)

GRID_DOWNSAMPLING = 2  # the decoder's grid is the image side / 2² (28 → 7, 32 → 8, 8 → 2)
HOLE_SHADE = 0.5  # the grey the pictures draw the hole in (the encoder sees 0 there)


def side_in_pixels(fraction: float, image_shape) -> int:
    """A hole's side: ``fraction`` of the image's shorter side, rounded, at least 1 pixel."""
    return max(1, int(round(fraction * min(image_shape[:2]))))


def check_config(cfg, image_shape) -> None:
    """One-line errors for hole and weight settings that cannot work."""
    adversarial_losses(cfg.loss)  # raises for an unknown game
    if cfg.region not in REGIONS:
        raise UserError(
            f"objective.region must be one of {REGIONS}, got {cfg.region!r}; e.g. "
            "--config.objective.region=central."
        )
    low, high = tuple(cfg.random_region_size)
    if not 0 < cfg.region_size < 1 or not 0 < low <= high < 1:
        raise UserError(
            "objective.region_size and random_region_size are hole sides as fractions of the "
            f"image side, in (0, 1) with min ≤ max; got region_size={cfg.region_size}, "
            f"random_region_size={(low, high)}."
        )
    side = side_in_pixels(cfg.region_size, image_shape)
    if side >= min(image_shape[:2]):
        raise UserError(
            f"objective.region_size={cfg.region_size} hides all of a {image_shape[0]}×"
            f"{image_shape[1]} image ({side} pixels a side); use a smaller fraction such as 0.5."
        )
    if cfg.random_regions < 1:
        raise UserError(f"objective.random_regions must be ≥ 1, got {cfg.random_regions}.")
    if cfg.reconstruction_weight < 0 or cfg.adversarial_weight < 0 or cfg.r1_weight < 0:
        raise UserError(
            "objective.reconstruction_weight, adversarial_weight and r1_weight must be ≥ 0, got "
            f"{cfg.reconstruction_weight}, {cfg.adversarial_weight}, {cfg.r1_weight}."
        )


def draw_holes(key, batch_size: int, image_shape, cfg):
    """The masks M̂ of a batch: float32 [B, H, W, 1], 1 in the hole (`ssl_jax.masks`)."""
    hw = tuple(image_shape[:2])
    if cfg.region == "central":
        mask = central_region_mask(hw, side_in_pixels(cfg.region_size, image_shape))
        mask = jnp.broadcast_to(mask, (batch_size, *hw))
    else:
        low, high = (side_in_pixels(f, image_shape) for f in cfg.random_region_size)
        mask = random_region_masks(key, batch_size, hw, (low, high), cfg.random_regions)
    return mask[..., None]


def masked_input(images, mask):
    """(1 − M̂) ⊙ x: the hole's pixels zeroed. images [B, H, W, C], mask [B, H, W, 1]."""
    return images * (1 - mask).astype(images.dtype)


def fill_hole(images, predictions, mask):
    """x̂ = (1 − M̂) ⊙ x + M̂ ⊙ F: the prediction inside the hole, the image outside."""
    return jnp.where(mask > 0, predictions.astype(images.dtype), images)


def hole_reconstruction_loss(predictions, images, mask):
    """L_rec = Σ M̂ ⊙ (x − F)² / Σ M̂: the squared error over the hidden values only.

    predictions, images: [B, H, W, C]; mask [B, H, W, 1] (1 in the hole), counted once per
    channel. Values outside the hole do not enter (their error is multiplied by 0, so its
    gradient there is 0 too). A mean over the global batch's hidden values.
    """
    predictions, images = at_least_float32(predictions), at_least_float32(images)
    mask = jnp.broadcast_to(mask, images.shape).astype(images.dtype)
    return jnp.sum(mask * jnp.square(images - predictions)) / jnp.sum(mask)


def joint_loss(reconstruction, adversarial, reconstruction_weight, adversarial_weight):
    """The inpainter's loss L_F = λ_rec · L_rec + λ_adv · L_adv (Pathak et al. 2016, §3.2)."""
    return reconstruction_weight * reconstruction + adversarial_weight * adversarial


class Inpainter(NamedTuple):
    """F: ``encoder`` → ``to_grid`` → ``decoder``, three modules of ``params``."""

    encoder: nn.Module
    to_grid: nn.Module
    decoder: nn.Module
    grid_shape: tuple[int, int, int]


def build_inpainter(config, image_spec, dtype) -> Inpainter:
    cfg = config.objective
    height, width, _ = image_spec.shape
    grid = (
        starting_size(height, GRID_DOWNSAMPLING),
        starting_size(width, GRID_DOWNSAMPLING),
        cfg.decoder_width,
    )
    return Inpainter(
        encoder=build_encoder(config.model, image_spec, dtype=dtype),
        to_grid=nn.Dense(grid[0] * grid[1] * grid[2], dtype=dtype),
        decoder=ConvDecoder(tuple(image_spec.shape), width=cfg.decoder_width, dtype=dtype),
        grid_shape=grid,
    )


def inpaint(net: Inpainter, params, batch_stats, masked, *, train: bool):
    """F(masked): predictions [B, H, W, C] in [0, 1] and the encoder's batch statistics."""
    features, enc_stats = apply_module(
        net.encoder, params, batch_stats, "encoder", masked, train=train
    )
    grid = net.to_grid.apply({"params": params["to_grid"]}, features.reshape(len(masked), -1))
    grid = nn.relu(grid).reshape(len(masked), *net.grid_shape)
    logits = net.decoder.apply({"params": params["decoder"]}, grid, train=train)
    return jax.nn.sigmoid(at_least_float32(logits)), enc_stats


@register_objective("context_encoder")
def make(config, input_spec) -> Objective:
    image_spec = require(input_spec, "images", "context_encoder", kind="images")
    # Fields a config leaves out take their defaults.
    cfg = type(config.objective)({**DEFAULTS, **dict(config.objective)})
    check_config(cfg, image_spec.shape)
    dtype = jnp.dtype(config.compute_dtype)
    d_loss_fn, g_loss_fn = adversarial_losses(cfg.loss)
    net = build_inpainter(config, image_spec, dtype)
    trunk = ConvDiscriminator(widths=tuple(cfg.discriminator_widths), dtype=dtype)
    trunk.check_input_shape(image_spec.shape)
    head = DiscriminatorHead(dtype=dtype)

    def init(key, sample_batch):
        images = sample_batch["images"]
        e_key, g_key, dec_key, d_key, h_key = jax.random.split(key, 5)
        e_params, e_stats = init_module(net.encoder, e_key, images)
        features = net.encoder.apply(
            {"params": e_params, "batch_stats": e_stats}, images, train=False
        )
        features = features.reshape(len(images), -1)
        g_params = net.to_grid.init(g_key, features)["params"]
        grid = jnp.zeros((len(images), *net.grid_shape), dtype)
        d_params, _ = init_module(trunk, d_key, images)
        params = {
            "encoder": e_params,
            "to_grid": g_params,
            "decoder": init_module(net.decoder, dec_key, grid)[0],
            "discriminator": d_params,
            "discriminator_head": init_module(
                head, h_key, trunk.apply({"params": d_params}, images, train=False)
            )[0],
        }
        return params, {"encoder": e_stats}, NoState()

    def discriminate(params, images):
        """D(images): logits [B]."""
        features = trunk.apply({"params": params["discriminator"]}, images, train=True)
        return head.apply({"params": params["discriminator_head"]}, features, train=True)

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step
        check_group(group, "context_encoder")
        images = batch["images"].astype(dtype)
        # Each group's loss gets its own key from the trainer, so random holes are drawn
        # afresh for D's update and F's (the central hole is the same in both).
        mask = draw_holes(key, images.shape[0], image_spec.shape, cfg).astype(dtype)
        predictions, enc_stats = inpaint(
            net, params, batch_stats, masked_input(images, mask), train=True
        )
        filled = fill_hole(images, predictions, mask)
        if group == "discriminator":
            filled = jax.lax.stop_gradient(filled)  # F's output is D's data: no gradient to F
            value, metrics = discriminator_objective(
                d_loss_fn, lambda x: discriminate(params, x), images, filled, cfg.r1_weight
            )
            return value, LossOutput({}, metrics)
        reconstruction = hole_reconstruction_loss(predictions, images, mask)
        fake_logits = discriminate(params, filled)
        adversarial = g_loss_fn(fake_logits)
        value = joint_loss(
            reconstruction, adversarial, cfg.reconstruction_weight, cfg.adversarial_weight
        )
        metrics = {
            "loss": value,
            "reconstruction": reconstruction,
            "adversarial": adversarial,
            "fake_probability": real_probability(fake_logits),
            "hole_fraction": jnp.mean(mask),
        }
        return value, LossOutput({"encoder": enc_stats}, metrics)

    def pictures(params, batch_stats, images, key):
        """Held-out images with the hole (grey), filled by F (inference mode), and whole."""
        mask = draw_holes(key, images.shape[0], image_spec.shape, cfg).astype(images.dtype)
        predictions, _ = inpaint(net, params, batch_stats, masked_input(images, mask), train=False)
        shown_hole = jnp.where(mask > 0, HOLE_SHADE, images)
        filled = fill_hole(images, predictions, mask)
        return {"inpaintings": jnp.stack([shown_hole, filled, images])}

    groups = {
        "discriminator": ("discriminator", "discriminator_head"),
        "generator": ("encoder", "to_grid", "decoder"),
    }
    return Objective(
        name="context_encoder",
        init=init,
        loss=loss,
        param_groups=groups,
        representations={"encoder": module_representation(net.encoder)},
        pictures=pictures,
    )
