"""CPC: contrastive predictive coding of 1-D sequences (raw audio).

Notes 002 §2.8 (CPC: structure and loss), 004 (autoencoders of sequential data). van den Oord,
Li and Vinyals, "Representation Learning with Contrastive Predictive Coding", 2018.

Each waveform x is encoded into frames z_t = g_enc(x) (``encoder``, a strided 1-D CNN, one
frame per 10 ms), an autoregressive network summarises the past into c_t = g_ar(z_≤t)
(``context``: a GRU or a causal transformer), and one linear map W_k per offset k = 1..K
(``predictor``) scores candidate future frames, f_k(x_{t+k}, c_t) = exp(z_{t+k}ᵀ W_k c_t).
The InfoNCE loss teaches c_t to pick the true z_{t+k} among frames of other times and other
sequences, which maximises a lower bound on the mutual information I(x_{t+k}; c_t).

Modules: ``encoder`` (z), ``context`` (c), ``predictor`` (W_1..W_K). Representations:
``context`` (c_t mean-pooled over time) and ``features`` (z_t mean-pooled), both of ``audio``.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.models import build_encoder
from ssl_jax.models.audio import CausalTransformerContext, GRUContext
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import (
    LossOutput,
    NoState,
    Objective,
    Representation,
    apply_module,
    init_module,
)
from ssl_jax.precision import at_least_float32

# The config block ``objective.name=cpc`` switches to (ssl_jax.config.switch_block).
DEFAULTS = dict(
    context="gru",
    context_dim=64,
    prediction_steps=8,
    num_times=0,
    transformer_depth=2,
    transformer_heads=4,
)


class OffsetPredictors(nn.Module):
    """One linear map per offset, no bias: c [B, S, C] → W_k c for k = 1..K, [K, B, S, D]."""

    num_offsets: int
    features: int

    @nn.compact
    def __call__(self, c, *, train: bool = False):
        del train
        kernel = self.param(
            "kernel",
            nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=1, out_axis=2),
            (self.num_offsets, c.shape[-1], self.features),
            jnp.float32,
        )
        c = at_least_float32(c)
        return jnp.einsum("bsc,kcd->kbsd", c, kernel.astype(c.dtype))


def cpc_infonce_loss(z, predictions, times):
    """CPC's InfoNCE loss, averaged over offsets k and anchors (b, t).

    With anchors a = (b, t) for every sequence b of the batch and every time t of ``times``
    (S of them), the candidates for offset k are the frames z_{b', t'+k} of every sequence b'
    and every t' of ``times``: M = B·S of them, the true future z_{b,t+k} and M − 1 negatives
    from other time steps of the same sequence and from the other sequences. With logits
    s^k_{a,a'} = z_{a'+k}ᵀ W_k c_a (so f_k = exp(s)),

        L_k = −(1/M) Σ_a log [ exp(s^k_{a,a}) / Σ_{a'} exp(s^k_{a,a'}) ],   L = (1/K) Σ_k L_k,

    notes 002 §2.8.1's L_N = −E[log f_k(x_{t+k}, c_t) / Σ_{x_j ∈ X} f_k(x_j, c_t)]. Since
    I(x_{t+k}; c_t) ≥ log M − L_k, ``log M − L`` is logged as the bound. The batch must be the
    **global** batch (the trainer's global-view jit gives it): negatives come from every
    device's sequences. Reductions run in float32.

    Args:
      z: [B, T', D] encoded frames.
      predictions: [K, B, S, D] W_k c_t for the anchor times (k = 1..K in order).
      times: [S] int32 anchor times, each ≤ T' − 1 − K.

    Returns:
      (loss L, metrics: per-offset losses [K] and top-1 accuracies [K] of picking the future).
    """
    num_offsets, batch, num_times, dim = predictions.shape
    offsets = jnp.arange(1, num_offsets + 1)
    targets = at_least_float32(z)[:, times[None, :] + offsets[:, None]]  # [B, K, S, D]
    targets = targets.transpose(1, 0, 2, 3).reshape(num_offsets, batch * num_times, dim)
    predictions = at_least_float32(predictions.reshape(num_offsets, batch * num_times, dim))
    logits = jnp.einsum("kad,kpd->kap", predictions, targets)  # [K, M anchors, M candidates]
    positives = jnp.broadcast_to(jnp.arange(batch * num_times), logits.shape[:2])
    per_anchor = optax.softmax_cross_entropy_with_integer_labels(logits, positives)
    loss_k = per_anchor.mean(axis=1)
    accuracy_k = (jnp.argmax(logits, axis=-1) == positives).mean(axis=1)
    return loss_k.mean(), {"loss_k": loss_k, "accuracy_k": accuracy_k}


def anchor_times(key, num_frames, num_offsets, num_times):
    """``num_times`` distinct anchor times drawn uniformly from [0, T' − K), sorted; all of them
    when ``num_times`` is 0 or at least T' − K."""
    valid = num_frames - num_offsets
    if num_times <= 0 or num_times >= valid:
        return jnp.arange(valid)
    return jnp.sort(jax.random.choice(key, valid, (num_times,), replace=False))


def build_context(cfg, dtype):
    if cfg.context == "gru":
        return GRUContext(features=cfg.context_dim, dtype=dtype)
    if cfg.context == "transformer":
        return CausalTransformerContext(
            features=cfg.context_dim,
            depth=cfg.get("transformer_depth", 2),
            num_heads=cfg.get("transformer_heads", 4),
            dtype=dtype,
        )
    raise UserError(
        f"cpc context must be 'gru' or 'transformer', got {cfg.context!r}; "
        "set --config.objective.context."
    )


def mean_over_time(x):
    """[N, T', D] → [N, D] float32."""
    return at_least_float32(x).mean(axis=1)


@register_objective("cpc")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    dtype = jnp.dtype(config.compute_dtype)
    audio_spec = require(input_spec, "audio", "cpc", kind="audio")
    encoder = build_encoder(config.model, audio_spec, dtype=dtype)
    context = build_context(cfg, dtype)
    num_offsets = int(cfg.prediction_steps)
    num_frames = audio_spec.shape[0] // encoder.downsampling
    if num_offsets < 1 or num_frames <= num_offsets:
        raise UserError(
            f"cpc prediction_steps must be in 1..{num_frames - 1} (the waveforms give "
            f"{num_frames} frames), got {num_offsets}; set --config.objective.prediction_steps."
        )
    num_times = int(cfg.get("num_times", 0))

    def init(key, sample_batch):
        enc_key, ctx_key, pred_key = jax.random.split(key, 3)
        audio = sample_batch["audio"]
        enc_params, enc_stats = init_module(encoder, enc_key, audio)
        z = encoder.apply({"params": enc_params}, audio, train=False)
        ctx_params, ctx_stats = init_module(context, ctx_key, z)
        c = context.apply({"params": ctx_params}, z, train=False)
        predictor = OffsetPredictors(num_offsets, z.shape[-1])
        pred_params, _ = init_module(predictor, pred_key, c)
        params = {"encoder": enc_params, "context": ctx_params, "predictor": pred_params}
        batch_stats = {"encoder": enc_stats, "context": ctx_stats}
        return params, batch_stats, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step, group
        z, enc_stats = apply_module(
            encoder, params, batch_stats, "encoder", batch["audio"], train=True
        )
        c, ctx_stats = apply_module(context, params, batch_stats, "context", z, train=True)
        times = anchor_times(key, z.shape[1], num_offsets, num_times)
        predictor = OffsetPredictors(num_offsets, z.shape[-1])
        predictions = predictor.apply({"params": params["predictor"]}, c[:, times])
        value, parts = cpc_infonce_loss(z, predictions, times)
        num_candidates = z.shape[0] * times.shape[0]
        metrics = {
            "loss": value,
            # I(x_{t+k}; c_t) ≥ log M − L_k: nats of mutual information the loss certifies.
            "mi_bound": jnp.log(num_candidates) - value,
            "accuracy": parts["accuracy_k"].mean(),
        }
        for k in range(num_offsets):
            metrics[f"accuracy_k{k + 1}"] = parts["accuracy_k"][k]
        return value, LossOutput({"encoder": enc_stats, "context": ctx_stats}, metrics)

    def encoder_variables(params, batch_stats):
        return {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}

    def features_fn(params, batch_stats, audio):
        return mean_over_time(encoder.apply(encoder_variables(params, batch_stats), audio))

    def context_fn(params, batch_stats, audio):
        z = encoder.apply(encoder_variables(params, batch_stats), audio)
        return mean_over_time(context.apply({"params": params["context"]}, z))

    def features_layers(params, batch_stats, audio):
        _, layers = encoder.apply(encoder_variables(params, batch_stats), audio, return_layers=True)
        return {name: mean_over_time(h) for name, h in layers.items()}

    def context_layers(params, batch_stats, audio):
        variables = encoder_variables(params, batch_stats)
        z, layers = encoder.apply(variables, audio, return_layers=True)
        layers = {name: mean_over_time(h) for name, h in layers.items()}
        layers["context"] = mean_over_time(context.apply({"params": params["context"]}, z))
        return layers

    representations = {
        "context": Representation(context_fn, "audio", ("encoder", "context"), context_layers),
        "features": Representation(features_fn, "audio", ("encoder",), features_layers),
    }
    return Objective(name="cpc", init=init, loss=loss, representations=representations)
