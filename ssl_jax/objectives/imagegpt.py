"""ImageGPT-style generative pretraining: next-pixel prediction with a causal Transformer.

Notes 001 §3.2 (generative representation learning: ImageGPT), Chen et al. 2020. An image is
reduced to ``resolution`` × ``resolution`` pixels (mean over square cells: 28×28 digits → 14×14)
and each pixel is quantised to a palette: grey images to ``grey_levels`` equal levels (16 by
default), colour images to ``colour_levels`` levels per channel (4: a palette of 4³ = 64
colours; ImageGPT clusters colours into 512 with k-means, a fixed grid needs no fitting). The
pixels in raster order are a sequence x_1 … x_n of palette ids, and a causal Transformer
(``config.model``: ``token_transformer``, run with ``causal=True``) reads [START, x_1, …,
x_{n−1}] and predicts each next pixel:

    L = −(1/n) Σ_i log p(x_i | x_<i)   (nats per pixel; ``bits_per_pixel`` = L / ln 2).

Token ids: 0 is padding (unused: every position is a pixel), 1 the start token, 2 + v the
palette entry v.

Modules: ``encoder`` (the Transformer) and ``head`` (a Dense to the palette). The
representations average the token states over the sequence: ``middle`` reads block
``depth // 2`` (ImageGPT's best linear-probe features lie in the middle of the network, not at
its end, which specialises in the next pixel), ``encoder`` the final states; both of
``images``.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.models import build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, Representation, init_module
from ssl_jax.precision import at_least_float32

DEFAULTS = dict(resolution=14, grey_levels=16, colour_levels=4)
START_ID = 1
FIRST_PIXEL_ID = 2


def downsample(images, resolution: int):
    """[B, H, W, C] → [B, r, r, C]: the mean over each (H/r) × (W/r) cell."""
    b, h, w, c = images.shape
    fh, fw = h // resolution, w // resolution
    return images.reshape(b, resolution, fh, resolution, fw, c).mean(axis=(2, 4))


def quantise(images, levels: int):
    """[B, r, r, C] in [0, 1] → [B, r·r] palette ids in [0, levels^C): each channel rounded to
    one of ``levels`` equal steps, the channels combined in base ``levels``."""
    steps = jnp.clip(jnp.round(images * (levels - 1)), 0, levels - 1).astype(jnp.int32)
    weights = levels ** jnp.arange(images.shape[-1])
    return (steps * weights).sum(-1).reshape(images.shape[0], -1)


def palette_colours(ids, levels: int, channels: int):
    """Palette ids [...] → their colours [..., channels] in [0, 1] (`quantise`'s inverse)."""
    steps = (ids[..., None] // levels ** jnp.arange(channels)) % levels
    return steps / (levels - 1)


@register_objective("imagegpt")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "imagegpt", kind="images")
    height, width, channels = image_spec.shape
    resolution = cfg.resolution
    if resolution < 2 or height % resolution or width % resolution:
        raise UserError(
            f"imagegpt resolution {resolution} must divide the {height}×{width} images; "
            "set --config.objective.resolution (14 for 28×28, 8 for 8×8 or 32×32)."
        )
    if config.model.name != "token_transformer":
        raise UserError(
            "imagegpt predicts pixels with a causal Transformer: set --config.model.name="
            f"token_transformer (got {config.model.name!r})."
        )
    levels = cfg.grey_levels if channels == 1 else cfg.colour_levels
    palette = levels**channels
    length = resolution * resolution
    dtype = jnp.dtype(config.compute_dtype)
    model_config = {**dict(config.model), "vocab_size": FIRST_PIXEL_ID + palette, "causal": True}
    model_config.setdefault("max_length", length)
    encoder = build_encoder(model_config, (length,), dtype=dtype)
    head = nn.Dense(palette, dtype=dtype)
    middle_layer = f"block{max(encoder.depth // 2, 1)}"

    def pixel_ids(images):
        return quantise(downsample(images, resolution), levels)

    def inputs(pixels):
        """[START, x_1, …, x_{n−1}] as token ids."""
        start = jnp.full((pixels.shape[0], 1), START_ID, jnp.int32)
        return jnp.concatenate([start, pixels[:, :-1] + FIRST_PIXEL_ID], axis=1)

    def init(key, sample_batch):
        enc_key, head_key = jax.random.split(key)
        tokens = inputs(pixel_ids(sample_batch["images"]))
        enc_params, enc_stats = init_module(encoder, enc_key, tokens)
        states = jnp.zeros((*tokens.shape, encoder.dim), dtype)
        params = {"encoder": enc_params, "head": head.init(head_key, states)["params"]}
        return params, {"encoder": enc_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, key, step, group
        pixels = pixel_ids(batch["images"])
        states, _ = encoder.apply(
            {"params": params["encoder"]}, inputs(pixels), method="encode_tokens"
        )
        logits = at_least_float32(head.apply({"params": params["head"]}, states))
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        nll = -jnp.take_along_axis(log_probs, pixels[..., None], axis=-1).mean()
        metrics = {
            "loss": nll,
            "bits_per_pixel": nll / jnp.log(2.0),
            "accuracy": jnp.mean(logits.argmax(-1) == pixels),
        }
        return nll, LossOutput(batch_stats, metrics)

    def layers(params, batch_stats, images):
        del batch_stats
        tokens = inputs(pixel_ids(images))
        _, named = encoder.apply(
            {"params": params["encoder"]}, tokens, train=False, return_layers=True
        )
        return {
            name: (value.mean(axis=1) if value.ndim == 3 else value).astype(jnp.float32)
            for name, value in named.items()
        }

    def middle(params, batch_stats, images):
        return layers(params, batch_stats, images)[middle_layer]

    def final(params, batch_stats, images):
        return layers(params, batch_stats, images)["features"]

    def pictures(params, batch_stats, images, key):
        """Rows: held-out images as the model sees them (downsampled, quantised), their lower
        halves completed by sampling the model pixel by pixel, and the originals' top halves
        with samples from nothing."""
        del batch_stats
        pixels = pixel_ids(images)
        half = length // 2

        def sample(prefix_pixels, count, key):
            def body(i, state):
                seq, key = state
                key, draw = jax.random.split(key)
                states, _ = encoder.apply(
                    {"params": params["encoder"]}, inputs(seq), method="encode_tokens"
                )
                logits = head.apply({"params": params["head"]}, states[:, i])
                seq = seq.at[:, i].set(jax.random.categorical(draw, logits.astype(jnp.float32)))
                return seq, key

            seq, _ = jax.lax.fori_loop(length - count, length, body, (prefix_pixels, key))
            return seq

        completed = sample(pixels.at[:, half:].set(0), length - half, key)
        from_nothing = sample(jnp.zeros_like(pixels), length, jax.random.fold_in(key, 1))
        show = lambda ids: palette_colours(ids, levels, channels).reshape(  # noqa: E731
            ids.shape[0], resolution, resolution, channels
        )
        return {
            "completions": jnp.stack([show(pixels), show(completed)]),
            "samples": show(from_nothing)[None],
        }

    representations = {
        "middle": Representation(fn=middle, modules=("encoder",), layers=layers),
        "encoder": Representation(fn=final, modules=("encoder",), layers=layers),
    }
    return Objective(
        name="imagegpt", init=init, loss=loss, representations=representations, pictures=pictures
    )
