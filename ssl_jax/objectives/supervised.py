"""Supervised pretraining: cross-entropy on the labels, the baseline beside every SSL row.

Notes 001 §3.1 (supervised representation learning and transfer). The encoder is followed by
a linear classifier ``classifier``; after pretraining the encoder's features are evaluated
like any other representation. Label smoothing ε replaces the one-hot target y by
(1 − ε)·y + ε/K.

Like SimCLR, it logs the cheap collapse diagnostics of the batch's encoder features
(`ssl_jax.diagnostics`): ``embedding_std`` (≈ 1/√d when spread) and
``effective_rank`` (RankMe, uncentred), so supervised and self-supervised runs can be
compared on them during pretraining.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.diagnostics import effective_rank, embedding_std
from ssl_jax.errors import UserError
from ssl_jax.models import build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, apply_module, init_module
from ssl_jax.precision import at_least_float32

# The config block ``objective.name=supervised`` switches to (ssl_jax.config.switch_block).
DEFAULTS = dict(num_classes=10, smoothing=0.0, augment=True)


def smoothed_cross_entropy(logits, labels, num_classes, smoothing):
    """(1/B) Σ_b −Σ_k ỹ_bk log softmax(ℓ_b)_k with ỹ = (1 − ε)·onehot(y) + ε/K, in float32."""
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing)
    return optax.softmax_cross_entropy(at_least_float32(logits), targets).mean()


@register_objective("supervised")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "supervised", kind="images")
    label_spec = require(input_spec, "labels", "supervised", kind="label")
    if cfg.num_classes < label_spec.num_values:
        raise UserError(
            f"objective.num_classes is {cfg.num_classes} but the labels go up to "
            f"{label_spec.num_values - 1}; set --config.objective.num_classes="
            f"{label_spec.num_values}."
        )
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    classifier = nn.Dense(cfg.num_classes, dtype=dtype)

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_params, enc_stats = init_module(encoder, key, images)
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, images, train=False)
        params = {"encoder": enc_params, "classifier": classifier.init(key, h)["params"]}
        return params, {"encoder": enc_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step, group
        images = batch["images"]
        if cfg.augment:
            images = augment.make_views(images, key, config.aug)[0]
        h, enc_stats = apply_module(encoder, params, batch_stats, "encoder", images, train=True)
        logits = classifier.apply({"params": params["classifier"]}, h)
        value = smoothed_cross_entropy(logits, batch["labels"], cfg.num_classes, cfg.smoothing)
        accuracy = (jnp.argmax(logits, -1) == batch["labels"]).mean()
        features = jax.lax.stop_gradient(h.reshape(h.shape[0], -1))
        metrics = {
            "loss": value,
            "train_acc": accuracy,
            "embedding_std": embedding_std(features),
            "effective_rank": effective_rank(features),
        }
        return value, LossOutput({"encoder": enc_stats}, metrics)

    return Objective("supervised", init, loss)
