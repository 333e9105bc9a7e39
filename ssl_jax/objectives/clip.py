"""CLIP: an image tower and a text tower trained to pair each image with its caption.

Notes 001 §3.1 (3) (image–text supervision: two towers, one embedding space, zero-shot
transfer), §3.4.1 (4) (CLIP: views from different modalities), §3.4.2 (InfoNCE) and §3.4.4
(1) (normalised outputs and a temperature). Radford et al., "Learning Transferable Visual
Models From Natural Language Supervision", 2021.

Modules: ``encoder`` (the image tower, built from ``config.model``), ``text_encoder`` (the
token Transformer of ``config.objective.text_model``), the linear maps ``image_projection``
and ``text_projection`` (no bias, as in the paper) into a shared ``embed_dim``-dimensional
space, and ``logit_scale``, one learnt scalar t = log(1/τ) started at log(1/0.07). For B
image–caption pairs with u_i = W_I f(x_i) / ‖·‖, v_j = W_T g(y_j) / ‖·‖ and s = exp(min(t,
log 100)),

    L = ½ [ (1/B) Σ_i −log softmax_j(s·u_iᵀv_j)[i] + (1/B) Σ_j −log softmax_i(s·u_iᵀv_j)[j] ]
    (`ssl_jax.losses.clip_loss` with τ = 1/s),

InfoNCE in both directions with the other B − 1 pairs of the global batch as negatives, so
``mi_bound`` = log B − L. The paper clips the scale at 100 by clamping the parameter after
each step; here the clamp is in the forward pass (the parameter may drift above log 100, but
the scale used stays at 100 and gets no gradient there), which trains the same way.

Representations: ``encoder`` (images → the image tower's features, before the projection, as
the paper's linear probes read them) and ``text`` (tokens → the text tower's features).
`zero_shot_classify` builds a classifier from class prompts alone (notes 001 §3.1 (3)).

Departures from the paper, for small data: the text tower pools the mean of its final token
states (the paper reads the end-of-text token of a causal Transformer), and with ``augment``
the image is one view of ``config.aug`` (the paper's only augmentation is a random square
crop: set the other ``aug`` probabilities to 0 for that).
"""

import dataclasses
import functools
import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment
from ssl_jax.data.spec import ArraySpec, require
from ssl_jax.errors import UserError
from ssl_jax.losses import batch_info_nce_logits, clip_loss, l2_normalize, mi_lower_bound
from ssl_jax.models import build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import (
    LossOutput,
    NoState,
    Objective,
    apply_module,
    init_module,
    module_representation,
)
from ssl_jax.objectives.siamese import collapse_metrics
from ssl_jax.precision import at_least_float32

# The config block ``objective.name=clip`` switches to (ssl_jax.config.switch_block). The
# paper's towers are a ResNet/ViT and a 12-layer, 512-wide Transformer with a 512–1024-d
# joint space; a 2-layer, 128-wide text tower suffices for short captions.
DEFAULTS = dict(
    embed_dim=128,
    init_temperature=0.07,
    max_logit_scale=100.0,
    learn_temperature=True,
    augment=True,
    text_model=dict(
        name="token_transformer", dim=128, depth=2, num_heads=4, pool="mean", max_length=77
    ),
)


@dataclasses.dataclass(frozen=True)
class Towers:
    """CLIP's modules and the two embeddings into the joint space (unit length, float32 or
    float64 in the exactness mode)."""

    image_encoder: nn.Module
    text_encoder: nn.Module
    image_projection: nn.Module
    text_projection: nn.Module

    def embed_images(self, params, batch_stats, images, *, train: bool):
        """images [B, H, W, C] → (u [B, E] unit rows, the encoder's new batch_stats)."""
        h, stats = apply_module(
            self.image_encoder, params, batch_stats, "encoder", images, train=train
        )
        z = self.image_projection.apply({"params": params["image_projection"]}, h)
        return l2_normalize(at_least_float32(z)), stats

    def embed_text(self, params, tokens):
        """tokens [B, L] → v [B, E] unit rows (the text tower has no batch statistics)."""
        h = self.text_encoder.apply({"params": params["text_encoder"]}, tokens, train=False)
        z = self.text_projection.apply({"params": params["text_projection"]}, h)
        return l2_normalize(at_least_float32(z))


def build_towers(config, image_spec=None, token_spec=None) -> Towers:
    """CLIP's modules from the config; the specs fill in and check the input shapes."""
    cfg = config.objective
    dtype = jnp.dtype(config.compute_dtype)
    if "text_model" not in cfg:
        raise UserError("objective clip needs objective.text_model (e.g. token_transformer).")
    return Towers(
        image_encoder=build_encoder(config.model, image_spec, dtype=dtype),
        text_encoder=build_encoder(cfg.text_model, token_spec, dtype=dtype),
        image_projection=nn.Dense(cfg.embed_dim, use_bias=False, dtype=dtype),
        text_projection=nn.Dense(cfg.embed_dim, use_bias=False, dtype=dtype),
    )


def logit_scale(params, cfg):
    """s = exp(min(t, log max_logit_scale)), t the learnt log(1/τ) (fixed unless learnt)."""
    t = params["logit_scale"]["log_scale"]
    if not cfg.learn_temperature:
        t = jax.lax.stop_gradient(t)
    return jnp.exp(jnp.minimum(t, math.log(cfg.max_logit_scale)))


def zero_shot_classify(params, batch_stats, images, class_prompts_tokens, *, config):
    """Zero-shot classification with a trained CLIP: each image goes to the class whose
    prompts' mean embedding is nearest by cosine.

    Each prompt of class c is embedded by the text tower and projection and L2-normalised;
    the class embedding is their mean, normalised again (the paper's prompt ensembling); the
    prediction for an image is argmax_c cos(u, w_c). No image of any class is used.

    Args:
      params, batch_stats: a CLIP run's (e.g. ``TrainState.params``, ``.batch_stats``).
      images: [N, H, W, C] float32 in [0, 1] (one program over all N: pass a large set in
        chunks).
      class_prompts_tokens: int32 [C, L] (one prompt per class) or [C, P, L] (P per class),
        ids of the run's vocabulary (e.g. `ssl_jax.data.captions.CaptionDataset.prompt_tokens`).
      config: the run's config (the towers' architecture).

    Returns:
      int32 [N], the predicted class of each image.
    """
    prompts = jnp.asarray(class_prompts_tokens, jnp.int32)
    if prompts.ndim == 2:
        prompts = prompts[:, None, :]
    if prompts.ndim != 3:
        raise UserError(f"class prompts must be [C, L] or [C, P, L] ids, got {prompts.shape}.")
    vocab_size = params["text_encoder"]["token_embed"]["embedding"].shape[0]
    architecture = json.dumps(
        {
            "model": config.model.to_dict(),
            "objective": config.objective.to_dict(),
            "compute_dtype": config.compute_dtype,
        },
        sort_keys=True,
    )
    classify = _zero_shot_program(architecture, vocab_size, prompts.shape[-1])
    return classify(params, batch_stats, jnp.asarray(images), prompts)


@functools.lru_cache(maxsize=8)
def _zero_shot_program(architecture: str, vocab_size: int, length: int):
    """The jitted classifier of one architecture (compiled once per shape, not per call)."""
    config = ml_collections.ConfigDict(json.loads(architecture))
    towers = build_towers(
        config, token_spec=ArraySpec((length,), "int32", "tokens", num_values=vocab_size)
    )

    @jax.jit
    def classify(params, batch_stats, images, prompts):
        num_classes, per_class, _ = prompts.shape
        text = towers.embed_text(params, prompts.reshape(-1, length))
        classes = l2_normalize(text.reshape(num_classes, per_class, -1).mean(axis=1))
        image, _ = towers.embed_images(params, batch_stats, images, train=False)
        return jnp.argmax(image @ classes.T, axis=-1).astype(jnp.int32)

    return classify


@register_objective("clip")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "clip", kind="images")
    token_spec = require(input_spec, "tokens", "clip", kind="tokens")
    if not (cfg.init_temperature > 0 and cfg.max_logit_scale >= 1.0):
        raise UserError(
            "objective.init_temperature must be > 0 and objective.max_logit_scale ≥ 1, got "
            f"{cfg.init_temperature} and {cfg.max_logit_scale}."
        )
    towers = build_towers(config, image_spec, token_spec)

    def init(key, sample_batch):
        keys = jax.random.split(key, 4)
        images, tokens = sample_batch["images"], sample_batch["tokens"]
        params, batch_stats = {}, {}
        params["encoder"], batch_stats["encoder"] = init_module(
            towers.image_encoder, keys[0], images
        )
        params["text_encoder"], _ = init_module(towers.text_encoder, keys[1], tokens)
        h_image = towers.image_encoder.apply(
            {"params": params["encoder"], "batch_stats": batch_stats["encoder"]},
            images,
            train=False,
        )
        h_text = towers.text_encoder.apply({"params": params["text_encoder"]}, tokens, train=False)
        params["image_projection"] = towers.image_projection.init(keys[2], h_image)["params"]
        params["text_projection"] = towers.text_projection.init(keys[3], h_text)["params"]
        params["logit_scale"] = {"log_scale": jnp.asarray(-math.log(cfg.init_temperature))}
        return params, batch_stats, NoState()

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del state, step, group
        images = batch["images"]
        if cfg.augment:
            images = augment.make_views(images, key, config.aug)[0]
        u, encoder_stats = towers.embed_images(params, batch_stats, images, train=True)
        v = towers.embed_text(params, batch["tokens"])
        scale = logit_scale(params, cfg)
        value = clip_loss(u, v, 1.0 / scale, normalize=False)
        logits, labels = batch_info_nce_logits(u, v, 1.0, normalize=False)
        metrics = {
            "loss": value,
            # Top-1 of finding each image's caption among the batch's (captions repeat, so
            # duplicates of the right one count as misses: a lower bound).
            "contrastive_acc": jnp.mean(jnp.argmax(logits, -1) == labels),
            # Both directions pick among B candidates (notes 001 §3.4.2).
            "mi_bound": mi_lower_bound(value, u.shape[0]),
            "logit_scale": scale,
            "temperature": 1.0 / scale,
            **collapse_metrics(u),
        }
        outputs = {"image_embedding": u, "text_embedding": v}
        return value, LossOutput({"encoder": encoder_stats}, metrics, outputs)

    representations = {
        "encoder": module_representation(towers.image_encoder, "encoder", "images"),
        "text": module_representation(towers.text_encoder, "text_encoder", "tokens"),
    }
    return Objective("clip", init, loss, representations=representations)
