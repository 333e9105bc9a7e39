"""Split-brain autoencoder: two networks, each predicting one part of the colour channels from
the other, read out together.

Notes 002 (split-brain autoencoder), 001 §3.3; Zhang, Isola & Efros 2017. An image in CIE
Lab (`ssl_jax.color`) is split into its lightness L and its colour ab. ``l_encoder`` reads L
and predicts the ab of each cell of a grid ``downsample`` times coarser than the image
(classification over the quantised ab bins with soft targets, as in
`ssl_jax.objectives.colorization`); ``ab_encoder`` reads ab and predicts L, classified into
``l_bins`` equal bins of [0, 100] (one-hot targets of the cell's mean lightness). The loss is
the sum of the two cross-entropies,

    L = CE(Ẑ_ab(F₁(L)), Z_ab) + CE(Ẑ_L(F₂(ab)), Z_L),

the ab term rebalanced as in colorization when ``rebalance`` > 0 (λ; the bins' counts stream
into the objective state). Neither half sees its own target, so each must learn what the
channels it reads imply about the others: the cross-channel prediction the notes describe.

Both encoders are built from ``config.model`` (give each half the width you would give one
encoder of half the size). Modules: ``l_encoder``, ``l_decoder``, ``ab_encoder``,
``ab_decoder``. Representations: ``split_brain`` (the two encoders' features concatenated,
the paper's readout), ``l_encoder`` and ``ab_encoder``, all of RGB images.
"""

import jax
import jax.numpy as jnp

from ssl_jax import color
from ssl_jax.models import MapDecoder, build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, Objective, Representation, apply_module, init_module
from ssl_jax.objectives.colorization import (
    AB_SCALE,
    ColorizationState,
    bin_targets,
    cell_average,
    check_colour_images,
    rebalanced_cross_entropy,
)

DEFAULTS = dict(grid=10.0, l_bins=50, downsample=4, decoder_width=64, rebalance=0.5)


def split_channels(images):
    """RGB [B, H, W, 3] in [0, 1] → (L/100 [B, H, W, 1], ab/110 [B, H, W, 2], Lab)."""
    lab = color.rgb_to_lab(images)
    return lab[..., :1] / 100.0, lab[..., 1:] / AB_SCALE, lab


def lightness_targets(lightness, num_bins: int):
    """Cell lightness [..., 1] in [0, 100] → one-hot targets over ``num_bins`` equal bins."""
    index = jnp.clip(jnp.floor(lightness[..., 0] / 100.0 * num_bins), 0, num_bins - 1)
    return jax.nn.one_hot(index.astype(jnp.int32), num_bins)


@register_objective("split_brain")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    spec = check_colour_images(input_spec, "split_brain", cfg.downsample)
    height, width, _ = spec.shape
    map_shape = (height // cfg.downsample, width // cfg.downsample)
    centres = jnp.asarray(color.ab_bin_centres(cfg.grid))
    dtype = jnp.dtype(config.compute_dtype)
    encoders = {
        "l_encoder": build_encoder(config.model, (height, width, 1), dtype=dtype),
        "ab_encoder": build_encoder(config.model, (height, width, 2), dtype=dtype),
    }
    decoders = {
        "l_decoder": MapDecoder(map_shape, centres.shape[0], cfg.decoder_width, dtype=dtype),
        "ab_decoder": MapDecoder(map_shape, cfg.l_bins, cfg.decoder_width, dtype=dtype),
    }

    def init(key, sample_batch):
        grey, ab, _ = split_channels(sample_batch["images"])
        params, batch_stats = {}, {}
        keys = jax.random.split(key, 4)
        for i, (half, x) in enumerate((("l", grey), ("ab", ab))):
            encoder, decoder = encoders[f"{half}_encoder"], decoders[f"{half}_decoder"]
            enc_params, enc_stats = init_module(encoder, keys[2 * i], x)
            h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, x, train=False)
            params[f"{half}_encoder"], batch_stats[f"{half}_encoder"] = enc_params, enc_stats
            params[f"{half}_decoder"], _ = init_module(decoder, keys[2 * i + 1], h)
        state = ColorizationState(jnp.zeros(centres.shape[0], jnp.float32))
        return params, batch_stats, state

    def predict(params, batch_stats, half, x):
        encoder = encoders[f"{half}_encoder"]
        h, stats = apply_module(encoder, params, batch_stats, f"{half}_encoder", x, train=True)
        out = decoders[f"{half}_decoder"].apply(
            {"params": params[f"{half}_decoder"]}, h, train=True
        )
        return out.astype(jnp.float32), stats

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del key, step, group
        grey, ab, lab = split_channels(batch["images"])
        cells = cell_average(lab, cfg.downsample)
        ab_logits, l_stats = predict(params, batch_stats, "l", grey)
        ab_targets, hard = bin_targets(cells[..., 1:], centres)
        ab_loss, ab_cross_entropy = rebalanced_cross_entropy(
            ab_logits, ab_targets, hard, objective_state.bin_counts, centres, cfg.rebalance
        )
        l_logits, ab_stats = predict(params, batch_stats, "ab", ab)
        l_targets = lightness_targets(cells[..., :1], cfg.l_bins)
        l_loss = -jnp.mean(jnp.sum(l_targets * jax.nn.log_softmax(l_logits), axis=-1))
        value = ab_loss + l_loss
        metrics = {
            "loss": value,
            "ab_loss": ab_loss,
            "ab_cross_entropy": ab_cross_entropy,
            "l_loss": l_loss,
            "l_accuracy": jnp.mean(l_logits.argmax(-1) == l_targets.argmax(-1)),
        }
        counts = jnp.zeros_like(objective_state.bin_counts).at[hard.reshape(-1)].add(1.0)
        new_stats = {"l_encoder": l_stats, "ab_encoder": ab_stats}
        return value, LossOutput(new_stats, metrics, {"bin_counts": counts})

    def update_state(objective_state, params, outputs, step):
        del params, step
        return ColorizationState(objective_state.bin_counts + outputs["bin_counts"])

    def half_features(half):
        encoder, name = encoders[f"{half}_encoder"], f"{half}_encoder"

        def fn(params, batch_stats, images):
            grey, ab, _ = split_channels(images)
            variables = {"params": params[name], "batch_stats": batch_stats.get(name, {})}
            out = encoder.apply(variables, grey if half == "l" else ab, train=False)
            return out.reshape(out.shape[0], -1).astype(jnp.float32)

        return fn

    l_features, ab_features = half_features("l"), half_features("ab")

    def both(params, batch_stats, images):
        return jnp.concatenate(
            [l_features(params, batch_stats, images), ab_features(params, batch_stats, images)],
            axis=-1,
        )

    representations = {
        "split_brain": Representation(fn=both, modules=("l_encoder", "ab_encoder")),
        "l_encoder": Representation(fn=l_features, modules=("l_encoder",)),
        "ab_encoder": Representation(fn=ab_features, modules=("ab_encoder",)),
    }
    return Objective(
        name="split_brain",
        init=init,
        loss=loss,
        update_state=update_state,
        representations=representations,
    )
