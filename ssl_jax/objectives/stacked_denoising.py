"""Stacked denoising autoencoder: greedy layer-wise denoising stages, then end-to-end tuning.

Notes 002 (stacked denoising autoencoders, Vincent et al. 2010), 004 (deep autoencoders,
Hinton & Salakhutdinov 2006). The encoder is a stack of sigmoid layers h_k = σ(W_k h_{k−1} + b_k),
h_0 = x (the flattened image), of widths ``layer_dims``. Stage k trains layer k alone as a
denoising autoencoder of the representation below it, with layers 1…k−1 fixed:

    h̃_{k−1} ~ q(h̃ | h_{k−1}),   L_k = Σ_i ℓ(h_{k−1,i}, [g_k(σ(W_k h̃_{k−1} + b_k))]_i)

with q a corruption of `ssl_jax.corruption` (``corruption``, ``corruption_level``; α/β weights on
corrupted and clean units, ``corrupted_weight`` and ``clean_weight``), g_k a linear decoder back
to h_{k−1}'s width and ℓ the cross-entropy (``reconstruction="bernoulli"``; every h lies in
[0, 1]) or the squared error (``"mse"``). Noise is applied only to the input of the layer being
trained; the layers below it see clean data.

Each stage is its own run: stage k loads layers 1…k−1 and their decoders from stage k−1's run
with ``config.init_from`` (frozen; the decoders travel with the layers, so the last stage's run
holds the whole stack). ``finetune=True`` then trains every layer and decoder end to end as
one deep autoencoder, x̃ → h_1 → … → h_K → ĥ_{K−1} → … → x̂ (decoders unrolled in reverse), loaded
unfrozen from the last stage. See experiments/stacked_denoising_mnist.py for the commands.

Modules: ``layer1`` … ``layerK`` and ``decoder1`` … ``decoderK`` (K = ``stage``). The
representation ``encoder`` is h_K on clean inputs; its layers are h_1 … h_K.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.corruption import corrupt, weighted_reconstruction_error
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.autoencoder import check_variant, per_pixel_error
from ssl_jax.objectives.base import LossOutput, NoState, Objective, Representation

DEFAULTS = dict(
    layer_dims=(512, 256, 128),
    stage=1,
    finetune=False,
    corruption="masking",
    corruption_level=0.25,
    corrupted_weight=1.0,
    clean_weight=1.0,
    reconstruction="bernoulli",
)


def stage_modules(stage: int) -> tuple[str, ...]:
    """The modules a run of ``stage`` inherits from the run of the stage before it."""
    return tuple(f"{kind}{k}" for k in range(1, stage) for kind in ("layer", "decoder"))


def check_stages(cfg, init_from) -> None:
    """One-line errors for a stage that cannot be run as configured."""
    num_layers, stage = len(cfg["layer_dims"]), cfg["stage"]
    if not 1 <= stage <= num_layers:
        raise UserError(
            f"objective.stage must be 1…{num_layers} (one stage per entry of "
            f"objective.layer_dims={tuple(cfg['layer_dims'])}), got {stage}."
        )
    loaded = {target for target, *_ in (m.split("=") for m in init_from.get("modules", ()))}
    wanted = stage_modules(stage + 1 if cfg["finetune"] else stage)
    missing = [m for m in wanted if m not in loaded]
    frozen = bool(init_from.get("frozen"))
    if missing or not init_from.get("workdir") or frozen == cfg["finetune"]:
        if cfg["finetune"]:
            how = f"modules={wanted} from the run of the last stage, frozen=False"
        else:
            how = f"modules={wanted} from the run of stage {stage - 1}, frozen=True"
        if wanted:
            raise UserError(
                f"stacked_denoising {'fine-tuning' if cfg['finetune'] else f'stage {stage}'} "
                f"starts from the layers already trained: set config.init_from (workdir=..., "
                f"{how}); see experiments/stacked_denoising_mnist.py."
            )


@register_objective("stacked_denoising")
def make(config, input_spec) -> Objective:
    image_spec = require(input_spec, "images", "stacked_denoising", kind="images")
    cfg = {**DEFAULTS, **dict(config.objective)}
    check_variant({**cfg, "sparsity": "none", "contraction": "none", "decoder": "mlp"})
    check_stages(cfg, config.get("init_from") or {})
    stage, dims = cfg["stage"], tuple(cfg["layer_dims"])
    num_pixels = math.prod(image_spec.shape)
    dtype = jnp.dtype(config.compute_dtype)
    widths = (num_pixels, *dims[:stage])  # widths[k] is h_k's
    layers = {f"layer{k}": nn.Dense(widths[k], dtype=dtype) for k in range(1, stage + 1)}
    decoders = {f"decoder{k}": nn.Dense(widths[k - 1], dtype=dtype) for k in range(1, stage + 1)}

    def up(params, h, k):
        """h_k = σ(W_k h_{k−1} + b_k)."""
        return jax.nn.sigmoid(layers[f"layer{k}"].apply({"params": params[f"layer{k}"]}, h))

    def down(params, h, k):
        """The logits of ĥ_{k−1} = g_k(h_k)."""
        return decoders[f"decoder{k}"].apply({"params": params[f"decoder{k}"]}, h)

    def encode(params, images, top):
        h = images.reshape(images.shape[0], -1).astype(dtype)
        named = {}
        for k in range(1, top + 1):
            h = named[f"layer{k}"] = up(params, h, k)
        return h, named

    def unrolled_logits(params, images):
        """x̂'s logits: up the whole stack, then down through every decoder."""
        h, _ = encode(params, images, stage)
        for k in range(stage, 0, -1):
            logits = down(params, h, k)
            h = jax.nn.sigmoid(logits)
        return logits.reshape(images.shape)

    def init(key, sample_batch):
        images = sample_batch["images"]
        keys = jax.random.split(key, 2 * stage)
        params = {}
        for k in range(1, stage + 1):
            below = jnp.zeros((images.shape[0], widths[k - 1]), dtype)
            params[f"layer{k}"] = layers[f"layer{k}"].init(keys[2 * k - 2], below)["params"]
            above = jnp.zeros((images.shape[0], widths[k]), dtype)
            params[f"decoder{k}"] = decoders[f"decoder{k}"].init(keys[2 * k - 1], above)["params"]
        return params, {}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del batch_stats, objective_state, step, group
        images = batch["images"]
        level, kind = cfg["corruption_level"], cfg["corruption"]
        if cfg["finetune"]:
            corrupted, mask = corrupt(key, images, kind, level)
            target, logits = images, unrolled_logits(params, corrupted)
        else:
            # The fixed layers below: no gradient reaches them (they are also frozen).
            target = jax.lax.stop_gradient(encode(params, images, stage - 1)[0])
            corrupted, mask = corrupt(key, target, kind, level)
            logits = down(params, up(params, corrupted, stage), stage)
        per_unit = per_pixel_error(logits, target, cfg["reconstruction"])
        value = weighted_reconstruction_error(
            per_unit, mask, cfg["corrupted_weight"], cfg["clean_weight"]
        )
        return value, LossOutput({}, {"loss": value, "stage": jnp.int32(stage)})

    def representation(params, batch_stats, images):
        del batch_stats
        return encode(params, images, stage)[0].astype(jnp.float32)

    def named_layers(params, batch_stats, images):
        del batch_stats
        return encode(params, images, stage)[1]

    def pictures(params, batch_stats, images, key):
        """Held-out images over their reconstructions through the whole stack."""
        del batch_stats, key
        return {
            "reconstructions": jnp.stack([images, jax.nn.sigmoid(unrolled_logits(params, images))])
        }

    encoder = Representation(fn=representation, modules=tuple(layers), layers=named_layers)
    return Objective(
        name="stacked_denoising",
        init=init,
        loss=loss,
        representations={"encoder": encoder},
        pictures=pictures,
    )
