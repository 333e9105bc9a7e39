"""VQ-VAE: a convolutional encoder to a grid of vectors, each replaced by its nearest codebook
vector, and a convolutional decoder from the quantised grid.

Notes 004 (discrete latent codes: VQ-VAE, van den Oord et al. 2017), 001 §3.2 (latent-variable
models). The encoder (``config.model``) reads an image; its deepest feature map [B, h, w, C]
(small_cnn's last stage) goes through a 1×1 convolution, ``pre_quantizer``, to z_e [B, h, w, D];
each of the h·w vectors is quantised to its nearest of K codebook vectors with the
straight-through estimator (`ssl_jax.quantize`), and the decoder (`ConvDecoder`) gives
Bernoulli pixel logits from z_q. Per image, summed over pixels and over the grid (eq. 3):

    L = −log p(x | z_q) + ‖sg[z_e] − e‖² + β ‖z_e − sg[e]‖²,   β = ``commitment_weight``

``ema``: the codebook follows the moving averages of the vectors assigned to each code (decay
``ema_decay``, Laplace smoothing ``ema_epsilon``; appendix A.1) instead of the codebook term's
gradient. It then lives in the objective state, `VQState.ema`, updated in ``update_state`` from
the global batch's counts and sums; otherwise it is the parameter ``params["codebook"]``.

``restart_dead_codes``: a code no vector of the (global) batch has chosen for
``restart_after_steps`` steps is moved onto a random encoder output of the batch
(`ssl_jax.quantize.restart_codes`; Jukebox §2.2). ``update_state`` cannot write parameters, so
in gradient mode a restart is kept as `VQState.restart_shift`, added to ``params["codebook"]``
(the gradient of the codebook is unchanged by a constant shift).

Logged: ``reconstruction`` (nats per image), ``commitment`` (‖z_e − e‖² per image, before β),
``codebook_usage`` (fraction of codes chosen in the batch), ``perplexity`` (exp of the entropy of
the batch's code frequencies: the effective number of codes in use) and ``dead_codes`` (codes
unchosen for ``restart_after_steps`` steps or more, before this step's restarts).

Representation: ``encoder``, the encoder's features as ``config.model`` pools or flattens them
(the map z_e is computed from, before quantisation). Pictures: held-out images over their
reconstructions from the quantised codes, and samples: grids whose code at each position is
drawn from the held-out images' codes at that position (a product of empirical marginals; the
paper's prior, an autoregressive model over codes, is not part of this objective). The
pictures use the codebook the last step quantised with, which the loss copies into
``batch_stats["codebook"]`` (pictures receive parameters and batch statistics only).
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.latent import bernoulli_nll
from ssl_jax.models import build_encoder
from ssl_jax.models.conv_decoder import ConvDecoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import (
    LossOutput,
    Objective,
    apply_module,
    init_module,
    module_representation,
)
from ssl_jax.precision import at_least_float32
from ssl_jax.quantize import (
    EMACodebook,
    code_counts,
    code_sums,
    codebook_loss,
    codebook_perplexity,
    codebook_usage,
    commitment_loss,
    count_unused_steps,
    dead_codes,
    ema_codebook_update,
    init_ema_codebook,
    quantize,
    restart_candidates,
    restart_codes,
    restart_ema_codes,
)

DEFAULTS = dict(
    num_codes=64,
    code_dim=16,
    commitment_weight=0.25,
    decoder_width=64,
    ema=False,
    ema_decay=0.99,
    ema_epsilon=1e-5,
    restart_dead_codes=False,
    restart_after_steps=25,
)


class VQState(NamedTuple):
    """What the VQ-VAE carries between steps (every field is present whatever the options)."""

    ema: EMACodebook  # the codebook and its moving averages (``ema``; unchanged otherwise)
    restart_shift: jax.Array  # [K, D] added to params["codebook"] by restarts (gradient mode)
    unused_steps: jax.Array  # [K] int32: steps since each code was last chosen


def check_settings(cfg) -> None:
    problems = []
    if cfg.num_codes < 2 or cfg.code_dim < 1:
        problems.append(f"num_codes ≥ 2 and code_dim ≥ 1 (got {cfg.num_codes}, {cfg.code_dim})")
    if cfg.commitment_weight < 0:
        problems.append(f"commitment_weight ≥ 0 (got {cfg.commitment_weight})")
    if not 0 <= cfg.ema_decay < 1 or cfg.ema_epsilon <= 0:
        problems.append(
            f"ema_decay in [0, 1) and ema_epsilon > 0 (got {cfg.ema_decay}, {cfg.ema_epsilon})"
        )
    if cfg.restart_after_steps < 1:
        problems.append(f"restart_after_steps ≥ 1 (got {cfg.restart_after_steps})")
    if problems:
        raise UserError(f"vq_vae needs objective.{'; objective.'.join(problems)}.")


def deepest_feature_map(layers: dict, model_name: str):
    """The encoder's named [B, h, w, C] layer of smallest h·w (the last one of that size)."""
    maps = [value for value in layers.values() if value.ndim == 4]
    if not maps:
        raise UserError(
            f"vq_vae quantises a grid of feature vectors, and model {model_name!r} names no "
            "[B, h, w, C] layer; use a convolutional encoder (model.name='small_cnn' or resnet*)."
        )
    return min(reversed(maps), key=lambda m: m.shape[1] * m.shape[2])


def sum_per_image(values):
    """[B, ...] → the batch mean of each image's sum."""
    return values.reshape(values.shape[0], -1).sum(axis=-1).mean()


@register_objective("vq_vae")
def make(config, input_spec) -> Objective:
    # Fields a config leaves out take their defaults (configs written before a field existed).
    cfg = ml_collections.ConfigDict({**DEFAULTS, **config.objective.to_dict()})
    check_settings(cfg)
    image_spec = require(input_spec, "images", "vq_vae", kind="images")
    num_codes, code_dim = cfg.num_codes, cfg.code_dim
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    pre_quantizer = nn.Dense(code_dim, dtype=dtype)  # a 1×1 convolution of the feature map
    decoder = ConvDecoder(tuple(image_spec.shape), width=cfg.decoder_width, dtype=dtype)
    # Codebook vectors of norm about 1, uniform in ±√(3/D) (variance 1/D per coordinate).
    init_codebook = jax.nn.initializers.variance_scaling(1.0, "fan_out", "uniform")

    def encode(params, batch_stats, images, train):
        """z_e [B, h, w, D] and the encoder's new batch statistics."""
        (_, layers), stats = apply_module(
            encoder, params, batch_stats, "encoder", images, train=train, return_layers=True
        )
        feature_map = deepest_feature_map(layers, config.model.name)
        z = pre_quantizer.apply({"params": params["pre_quantizer"]}, feature_map)
        return at_least_float32(z), stats

    def codebook_of(params, objective_state):
        if cfg.ema:
            return objective_state.ema.codebook
        return params["codebook"]["embedding"] + objective_state.restart_shift

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, quant_key, dec_key, code_key = jax.random.split(key, 4)
        enc_params, enc_stats = init_module(encoder, enc_key, images)
        variables = {"params": enc_params, "batch_stats": enc_stats}
        _, layers = encoder.apply(variables, images, train=False, return_layers=True)
        feature_map = deepest_feature_map(layers, config.model.name)
        quant_params = pre_quantizer.init(quant_key, feature_map)["params"]
        grid = jnp.zeros((*feature_map.shape[:3], code_dim), dtype)
        dec_params, _ = init_module(decoder, dec_key, grid)
        codebook = init_codebook(code_key, (num_codes, code_dim), jnp.float32)
        params = {"encoder": enc_params, "pre_quantizer": quant_params, "decoder": dec_params}
        if not cfg.ema:
            params["codebook"] = {"embedding": codebook}
        state = VQState(
            ema=init_ema_codebook(codebook),
            restart_shift=jnp.zeros_like(codebook),
            unused_steps=jnp.zeros((num_codes,), jnp.int32),
        )
        return params, {"encoder": enc_stats, "codebook": {"embedding": codebook}}, state

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del step, group
        images = batch["images"]
        z, enc_stats = encode(params, batch_stats, images, train=True)
        codebook = codebook_of(params, objective_state)
        z_q, indices, e = quantize(z, codebook)
        logits = decoder.apply({"params": params["decoder"]}, z_q.astype(dtype), train=True)
        reconstruction = bernoulli_nll(logits, images).mean()
        commitment = sum_per_image(commitment_loss(z, e))
        value = reconstruction + cfg.commitment_weight * commitment
        if not cfg.ema:  # the EMA rule moves the codebook instead of this term's gradient
            value = value + sum_per_image(codebook_loss(z, e))
        counts = code_counts(indices, num_codes)
        outputs = {"code_counts": counts}
        if cfg.ema:
            outputs["code_sums"] = code_sums(jax.lax.stop_gradient(z), indices, num_codes)
        if cfg.restart_dead_codes:
            outputs["restart_candidates"] = restart_candidates(key, z, num_codes)
        patience = cfg.restart_after_steps
        metrics = {
            "loss": value,
            "reconstruction": reconstruction,
            "commitment": commitment,
            "codebook_usage": codebook_usage(counts),
            "perplexity": codebook_perplexity(counts),
            "dead_codes": jnp.sum(dead_codes(objective_state.unused_steps, patience)),
        }
        # The codebook this step used, for the pictures (which get no objective state).
        stats = {"encoder": enc_stats, "codebook": {"embedding": jax.lax.stop_gradient(codebook)}}
        return value, LossOutput(stats, metrics, outputs)

    def update_state(objective_state, params, outputs, step):
        """The EMA step of the codebook, then the restart of codes unused for too long."""
        del step
        counts = outputs["code_counts"]
        ema, shift = objective_state.ema, objective_state.restart_shift
        if cfg.ema:
            ema = ema_codebook_update(
                ema, counts, outputs["code_sums"], cfg.ema_decay, cfg.ema_epsilon
            )
        unused = count_unused_steps(objective_state.unused_steps, counts)
        if cfg.restart_dead_codes:
            dead = dead_codes(unused, cfg.restart_after_steps)
            candidates = outputs["restart_candidates"].astype(shift.dtype)
            if cfg.ema:
                ema = restart_ema_codes(ema, dead, candidates)
            else:
                # θ_k + s_k lands on the candidate; the live codes' shifts stay as they are.
                shift = restart_codes(shift, dead, candidates - params["codebook"]["embedding"])
            unused = jnp.where(dead, 0, unused)
        return VQState(ema, shift, unused)

    def pictures(params, batch_stats, images, key):
        """Held-out images over their reconstructions, and 2 rows of samples whose code at
        each grid position is that of a random held-out image at that position."""
        images = images[: images.shape[0] // 2 * 2]
        z, _ = encode(params, batch_stats, images, train=False)
        codebook = batch_stats["codebook"]["embedding"]
        _, indices, e = quantize(z, codebook)
        decode = lambda grid: jax.nn.sigmoid(
            at_least_float32(decoder.apply({"params": params["decoder"]}, grid, train=False))
        )
        n, height, width = indices.shape
        flat = indices.reshape(n, height * width)
        keys = jax.random.split(key, height * width)
        # Each position's codes shuffled across the images independently of the others.
        sampled = jax.vmap(lambda k, column: jax.random.permutation(k, column), (0, 1), 1)(
            keys, flat
        )
        samples = decode(jnp.take(codebook, sampled.reshape(n, height, width), axis=0))
        return {
            "reconstructions": jnp.stack([images, decode(e)]),
            "samples": samples.reshape(2, n // 2, *images.shape[1:]),
        }

    return Objective(
        name="vq_vae",
        init=init,
        loss=loss,
        update_state=update_state,
        representations={"encoder": module_representation(encoder)},
        pictures=pictures,
    )
