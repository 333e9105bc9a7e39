"""Colorization: predict an image's colours (ab in Lab) from its lightness L.

Notes 002 (colorization as self-supervision), 001 §3.3; Zhang, Isola & Efros 2016. The image
is converted to CIE Lab (`ssl_jax.color`); the encoder (``config.model``, one input channel)
reads L/100, and a map decoder (`ssl_jax.models.MapDecoder`) predicts the colours on a grid
``downsample`` times coarser than the image (the paper predicts at a quarter of the
resolution), whose targets are the ab values averaged over each cell.

``loss="classification"`` (the paper's): the ab plane is quantised into Q bins
(`ssl_jax.color.ab_bin_centres`, ``grid`` = 10); each cell's target Z is the soft encoding of
its ab value on the 5 nearest bins, and the loss is the rebalanced cross-entropy

    L = −(1/HW) Σ_{h,w} v(Z_{h,w}) Σ_q Z_{h,w,q} log Ẑ_{h,w,q},   v(Z) = w_{argmax_q Z_q},

with w the class-rebalancing weights of the bins' smoothed empirical distribution
(`ssl_jax.color.rebalancing_weights`, λ = ``rebalance``; 0 turns the weighting off: w = 1).
That distribution is counted from the training data as it streams by: the objective state
holds the bins' counts (`ColorizationState`), `update_state` adds each batch's, and the
weights of a step use the counts of the steps before it (uniform at step 0). Colours are
shown by the annealed mean of Ẑ at temperature 0.38 (Zhang et al.).

``loss="regression"``: the decoder predicts ab/110 directly, with squared error (the
desaturating baseline the classification loss improves on).

Modules: ``encoder`` and ``decoder``. Representation ``encoder``: the encoder's features of
the L channel of an RGB image (any colour image's lightness; the readout passes RGB).
Metrics: ``loss``, ``cross_entropy`` (unweighted, classification), ``ab_rmse`` (of the
predicted mean colour, in ab units).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ssl_jax import color
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.models import MapDecoder, build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, Objective, Representation, apply_module, init_module

DEFAULTS = dict(loss="classification", grid=10.0, downsample=4, decoder_width=64, rebalance=0.5)
LOSSES = ("classification", "regression")
AB_SCALE = 110.0  # |a|, |b| ≤ ~110 for sRGB colours
ANNEALING_TEMPERATURE = 0.38


class ColorizationState(NamedTuple):
    bin_counts: jax.Array  # [Q] float32: how often each ab bin was a cell's likeliest target


def lightness(images):
    """RGB images [B, H, W, 3] in [0, 1] → L/100 [B, H, W, 1] in [0, 1]."""
    return color.rgb_to_lab(images)[..., :1] / 100.0


def cell_average(x, factor: int):
    """[B, H, W, C] → [B, H/factor, W/factor, C]: the mean over each factor × factor cell."""
    b, h, w, c = x.shape
    return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def check_colour_images(input_spec, name: str, downsample: int):
    """The images spec of a colour objective; a one-line error for grey or ill-sized images."""
    spec = require(input_spec, "images", name, kind="images")
    height, width, channels = spec.shape
    if channels != 3:
        raise UserError(
            f"{name} needs colour images (3 channels), got {channels}; use a colour dataset "
            "such as --config.dataset=photo_patches or tfds:cifar10."
        )
    if downsample < 1 or height % downsample or width % downsample:
        raise UserError(
            f"{name} objective.downsample={downsample} must divide the image size "
            f"{height}×{width}; choose 1, 2 or 4 for 32×32 images."
        )
    return spec


def bin_targets(ab, centres):
    """ab [..., 2] → (soft targets Z [..., Q], hard bin index [...])."""
    # Grey cells (a = b = 0) sit exactly on the corner of four bins, and the colour
    # conversion's last-bit rounding (which varies with the batch layout) would pick among
    # them. Snapping ab to a 1/1024 grid makes such ties exact; they then go to the lowest
    # bin index, the same on one device or many.
    ab = jnp.round(ab * 1024.0) / 1024.0
    targets = color.soft_encode(ab, centres)
    return targets, targets.argmax(-1)


def rebalanced_cross_entropy(logits, targets, hard, bin_counts, centres, mix: float):
    """(weighted loss, unweighted cross-entropy) of bin ``logits`` [..., Q] for soft ``targets``
    [..., Q] whose likeliest bins are ``hard`` [...]; weights from ``bin_counts`` [Q]."""
    per_cell = -jnp.sum(targets * jax.nn.log_softmax(logits.astype(jnp.float32)), axis=-1)
    if mix > 0:
        weights = color.rebalancing_weights(color.smoothed_distribution(bin_counts, centres), mix)
        return jnp.mean(weights[hard] * per_cell), jnp.mean(per_cell)
    return jnp.mean(per_cell), jnp.mean(per_cell)


def annealed_mean(logits, centres, temperature: float = ANNEALING_TEMPERATURE):
    """The colour shown for bin logits [..., Q]: the mean of softmax(log Ẑ / T) over the bins."""
    return jax.nn.softmax(logits.astype(jnp.float32) / temperature, axis=-1) @ centres


@register_objective("colorization")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    if cfg.loss not in LOSSES:
        raise UserError(f"colorization objective.loss must be one of {LOSSES}, got {cfg.loss!r}.")
    spec = check_colour_images(input_spec, "colorization", cfg.downsample)
    height, width, _ = spec.shape
    map_shape = (height // cfg.downsample, width // cfg.downsample)
    centres = jnp.asarray(color.ab_bin_centres(cfg.grid))
    classify = cfg.loss == "classification"
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, (height, width, 1), dtype=dtype)
    outputs = centres.shape[0] if classify else 2
    decoder = MapDecoder(map_shape, outputs, width=cfg.decoder_width, dtype=dtype)

    def init(key, sample_batch):
        grey = lightness(sample_batch["images"])
        enc_key, dec_key = jax.random.split(key)
        enc_params, enc_stats = init_module(encoder, enc_key, grey)
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, grey, train=False)
        dec_params, _ = init_module(decoder, dec_key, h)
        state = ColorizationState(jnp.zeros(centres.shape[0], jnp.float32))
        return {"encoder": enc_params, "decoder": dec_params}, {"encoder": enc_stats}, state

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del key, step, group
        lab = color.rgb_to_lab(batch["images"])
        grey = lab[..., :1] / 100.0
        ab = cell_average(lab[..., 1:], cfg.downsample)
        h, enc_stats = apply_module(encoder, params, batch_stats, "encoder", grey, train=True)
        predicted = decoder.apply({"params": params["decoder"]}, h, train=True)
        if classify:
            targets, hard = bin_targets(ab, centres)
            value, cross_entropy = rebalanced_cross_entropy(
                predicted, targets, hard, objective_state.bin_counts, centres, cfg.rebalance
            )
            mean_ab = jax.nn.softmax(predicted.astype(jnp.float32), -1) @ centres
            counts = jnp.zeros_like(objective_state.bin_counts).at[hard.reshape(-1)].add(1.0)
            metrics = {"loss": value, "cross_entropy": cross_entropy}
            outputs = {"bin_counts": counts}
        else:
            mean_ab = predicted.astype(jnp.float32) * AB_SCALE
            value = jnp.mean((predicted.astype(jnp.float32) - ab / AB_SCALE) ** 2)
            metrics, outputs = {"loss": value}, {}
        metrics["ab_rmse"] = jnp.sqrt(jnp.mean(jnp.sum((mean_ab - ab) ** 2, axis=-1)))
        return value, LossOutput({"encoder": enc_stats}, metrics, outputs)

    def update_state(objective_state, params, outputs, step):
        del params, step
        if not classify:
            return objective_state
        return ColorizationState(objective_state.bin_counts + outputs["bin_counts"])

    def features(params, batch_stats, images):
        variables = {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}
        out = encoder.apply(variables, lightness(images), train=False)
        return out.reshape(out.shape[0], -1).astype(jnp.float32)

    def layers(params, batch_stats, images):
        variables = {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}
        _, named = encoder.apply(variables, lightness(images), train=False, return_layers=True)
        return named

    def pictures(params, batch_stats, images, key):
        """Rows: the grey input, its predicted colours (upsampled onto the true L), the
        original."""
        del key
        lab = color.rgb_to_lab(images)
        grey = lab[..., :1] / 100.0
        variables = {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}
        h = encoder.apply(variables, grey, train=False)
        predicted = decoder.apply({"params": params["decoder"]}, h, train=False)
        ab = annealed_mean(predicted, centres) if classify else predicted * AB_SCALE
        ab = jnp.repeat(jnp.repeat(ab, cfg.downsample, axis=1), cfg.downsample, axis=2)
        coloured = color.lab_to_rgb(jnp.concatenate([lab[..., :1], ab], axis=-1))
        return {"colorization": jnp.stack([jnp.repeat(grey, 3, axis=-1), coloured, images])}

    representations = {
        "encoder": Representation(fn=features, modules=("encoder",), layers=layers),
    }
    return Objective(
        name="colorization",
        init=init,
        loss=loss,
        update_state=update_state,
        representations=representations,
        pictures=pictures,
    )
