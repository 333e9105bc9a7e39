"""Small objectives that exercise the shapes of the objective interface in tests.

- ``toy_ema_queue``: a MoCo-shaped objective, an EMA target encoder and a FIFO queue of keys.
- ``toy_alternating``: a GAN-shaped objective, two parameter groups with their own optimizers.
- ``toy_nan_after``: reconstructs, then returns a NaN loss from a given step on.
- ``toy_slow``: SimCLR with a pause in every step, so a test can kill a run part-way.

And one hook, ``slow_down_run``: host-side pauses after each logged step and half-way through
each checkpoint save, so a test can kill a run at a chosen step or while a save is in flight.
Unlike ``toy_slow``'s in-step callback, it leaves the compiled program unchanged (and so
cacheable by JAX's persistent compilation cache, which skips programs with host callbacks).
"""

import os
import time
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssl_jax.models import ProjectionHead, build_encoder
from ssl_jax.objectives import register_objective, simclr
from ssl_jax.objectives.base import (
    LossOutput,
    NoState,
    Objective,
    apply_module,
    init_module,
    module_representation,
)
from ssl_jax.objectives.simclr import l2_normalize
from ssl_jax.objectives.targets import ema_update, fifo_enqueue


class EmaQueueState(NamedTuple):
    target_params: dict
    target_batch_stats: dict
    queue: jax.Array  # [K, D], row 0 the newest key


@register_objective("toy_ema_queue")
def make_ema_queue(config, input_spec):
    cfg = config.objective
    encoder = build_encoder(config.model, input_spec["images"], jnp.dtype(config.compute_dtype))
    projector = ProjectionHead(
        hidden_dims=(16,), output_dim=cfg.dim, dtype=jnp.dtype(config.compute_dtype)
    )

    def init(key, sample_batch):
        images = sample_batch["images"]
        k1, k2 = jax.random.split(key)
        enc_params, enc_stats = init_module(encoder, k1, images)
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, images, train=False)
        proj_params, proj_stats = init_module(projector, k2, h)
        params = {"encoder": enc_params, "projector": proj_params}
        stats = {"encoder": enc_stats, "projector": proj_stats}
        queue = l2_normalize(jax.random.normal(k2, (cfg.queue_size, cfg.dim)))
        return params, stats, EmaQueueState(params, stats, queue)

    def embed(params, stats, images, train):
        h, enc_stats = apply_module(encoder, params, stats, "encoder", images, train=train)
        z, proj_stats = apply_module(projector, params, stats, "projector", h, train=train)
        return l2_normalize(z), {"encoder": enc_stats, "projector": proj_stats}

    def loss(params, batch_stats, state, batch, key, step, *, group):
        images = batch["images"]
        noisy = images + 0.05 * jax.random.normal(key, images.shape)
        q, new_stats = embed(params, batch_stats, noisy, train=True)
        k, _ = embed(state.target_params, state.target_batch_stats, images, train=False)
        k = jax.lax.stop_gradient(k)
        positives = jnp.sum(q * k, axis=-1, keepdims=True)
        negatives = q @ state.queue.T
        logits = jnp.concatenate([positives, negatives], axis=1) / cfg.temperature
        labels = jnp.zeros(len(q), dtype=jnp.int32)
        value = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return value, LossOutput(new_stats, {"loss": value}, outputs={"keys": k})

    def update_state(state, params, outputs, step):
        return EmaQueueState(
            ema_update(state.target_params, params, cfg.momentum),
            state.target_batch_stats,
            fifo_enqueue(state.queue, outputs["keys"]),
        )

    return Objective("toy_ema_queue", init, loss, update_state)


class Generator(nn.Module):
    image_shape: tuple
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, noise, *, train: bool):
        del train
        size = 1
        for d in self.image_shape:
            size *= d
        return jax.nn.sigmoid(nn.Dense(size, dtype=self.dtype)(noise)).reshape(
            -1, *self.image_shape
        )


@register_objective("toy_alternating")
def make_alternating(config, input_spec):
    image_shape = input_spec["images"].shape
    encoder = build_encoder(config.model, input_spec["images"], jnp.dtype(config.compute_dtype))
    dtype = jnp.dtype(config.compute_dtype)
    head = nn.Dense(1, dtype=dtype)
    generator = Generator(tuple(image_shape), dtype=dtype)
    noise_dim = 8

    def init(key, sample_batch):
        images = sample_batch["images"]
        k1, k2, k3 = jax.random.split(key, 3)
        enc_params, enc_stats = init_module(encoder, k1, images)
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, images, train=False)
        params = {
            "encoder": enc_params,
            "disc_head": head.init(k2, h)["params"],
            "generator": init_module(generator, k3, jnp.zeros((1, noise_dim)))[0],
        }
        return params, {"encoder": enc_stats}, NoState()

    def discriminate(params, stats, images):
        h, new_stats = apply_module(encoder, params, stats, "encoder", images, train=True)
        return head.apply({"params": params["disc_head"]}, h)[:, 0], new_stats

    def loss(params, batch_stats, state, batch, key, step, *, group):
        real = batch["images"]
        noise = jax.random.normal(key, (real.shape[0], noise_dim))
        fake = generator.apply({"params": params["generator"]}, noise, train=True)
        logits, new_stats = discriminate(params, batch_stats, jnp.concatenate([real, fake]))
        real_logits, fake_logits = jnp.split(logits, 2)
        if group == "discriminator":
            value = (
                optax.sigmoid_binary_cross_entropy(real_logits, 1.0).mean()
                + optax.sigmoid_binary_cross_entropy(fake_logits, 0.0).mean()
            )
        else:  # the non-saturating generator loss
            value = optax.sigmoid_binary_cross_entropy(fake_logits, 1.0).mean()
        return value, LossOutput({"encoder": new_stats}, {"loss": value})

    groups = {"discriminator": ("encoder", "disc_head"), "generator": ("generator",)}
    return Objective("toy_alternating", init, loss, param_groups=groups)


class StepsSeen(NamedTuple):
    steps_seen: jax.Array  # int32 [], counted in update_state


@register_objective("toy_nan_after")
def make_nan_after(config, input_spec):
    image_shape = input_spec["images"].shape
    encoder = build_encoder(config.model, input_spec["images"], jnp.dtype(config.compute_dtype))
    decoder = nn.Dense(int(jnp.prod(jnp.array(image_shape))))

    def init(key, sample_batch):
        images = sample_batch["images"]
        k1, k2 = jax.random.split(key)
        enc_params, enc_stats = init_module(encoder, k1, images)
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, images, train=False)
        params = {"encoder": enc_params, "decoder": decoder.init(k2, h)["params"]}
        return params, {"encoder": enc_stats}, StepsSeen(jnp.int32(0))

    def loss(params, batch_stats, state, batch, key, step, *, group):
        images = batch["images"]
        h, stats = apply_module(encoder, params, batch_stats, "encoder", images, train=True)
        recon = decoder.apply({"params": params["decoder"]}, h).reshape(images.shape)
        value = jnp.mean((recon - images) ** 2)
        value = jnp.where(state.steps_seen >= config.objective.nan_from_step, jnp.nan, value)
        return value, LossOutput({"encoder": stats}, {"loss": value})

    def update_state(state, params, outputs, step):
        return StepsSeen(state.steps_seen + 1)

    return Objective("toy_nan_after", init, loss, update_state)


@register_objective("toy_slow")
def make_slow(config, input_spec):
    base = simclr.make(config, input_spec)

    def loss(*args, **kwargs):
        value, out = base.loss(*args, **kwargs)
        jax.debug.callback(lambda: time.sleep(config.objective.pause_sec), ordered=True)
        return value, out

    return Objective("toy_slow", base.init, loss)


TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax writes step N into N.orbax-checkpoint-tmp first


def slow_down_run(step_sec: float, save_sec: float, marker_dir: str) -> None:
    """Pauses ``step_sec`` after each logged step, and each save ``save_sec`` half-way.

    The save pause is in orbax's background writer, just before it writes the array metadata
    (``_METADATA``) into the step's temporary directory: the arrays are being written, the
    step is not yet renamed into place, and the training loop runs on meanwhile. Entering it
    touches ``marker_dir/saving_STEP``.
    """
    from etils import epath

    from ssl_jax.logs import MetricsLog

    log_write = MetricsLog.write

    def paused_log_write(self, *args, **kwargs):
        log_write(self, *args, **kwargs)
        time.sleep(step_sec)

    path_class = type(epath.Path("/"))
    write_text = path_class.write_text

    def paused_write_text(self, *args, **kwargs):
        steps = [p.name.split(".")[0] for p in self.parents if p.name.endswith(TMP_SUFFIX)]
        step = next((s for s in steps if s.isdigit()), None)
        if self.name == "_METADATA" and step is not None:
            open(os.path.join(marker_dir, f"saving_{step}"), "w").close()
            time.sleep(save_sec)
        return write_text(self, *args, **kwargs)

    MetricsLog.write = paused_log_write
    path_class.write_text = paused_write_text


class TokenBag(nn.Module):
    """Mean of the token embeddings of the non-padding ids: [B, L] → [B, dim]."""

    vocab_size: int
    dim: int = 8

    @nn.compact
    def __call__(self, tokens, *, train: bool):
        del train
        vectors = nn.Embed(self.vocab_size, self.dim)(tokens)
        mask = (tokens != 0)[..., None]
        return (vectors * mask).sum(1) / jnp.maximum(mask.sum(1), 1)


class FrameEncoder(nn.Module):
    """Waveform [B, T] → frames of ``frame`` samples → Dense → mean over frames: [B, dim]."""

    frame: int = 16
    dim: int = 8

    @nn.compact
    def __call__(self, audio, *, train: bool):
        del train
        frames = audio.reshape(audio.shape[0], -1, self.frame)
        return nn.tanh(nn.Dense(self.dim)(frames)).mean(axis=1)


class StepLog(NamedTuple):
    last_step: jax.Array  # int32 [], the `step` the last loss call received


@register_objective("toy_multimodal")
def make_multimodal(config, input_spec):
    """Images, tokens and audio of one example pulled together (an InfoNCE between image and
    audio embeddings and between image and token embeddings); two readable representations."""
    image_encoder = build_encoder(
        config.model, input_spec["images"], jnp.dtype(config.compute_dtype)
    )
    image_head = nn.Dense(8)
    token_encoder = TokenBag(input_spec["tokens"].num_values)
    audio_encoder = FrameEncoder()

    def init(key, sample_batch):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        images = sample_batch["images"]
        enc_params, enc_stats = init_module(image_encoder, k1, images)
        h = image_encoder.apply(
            {"params": enc_params, "batch_stats": enc_stats}, images, train=False
        )
        params = {
            "image_encoder": enc_params,
            "image_head": image_head.init(k2, h)["params"],
            "token_encoder": init_module(token_encoder, k3, sample_batch["tokens"])[0],
            "audio_encoder": init_module(audio_encoder, k4, sample_batch["audio"])[0],
        }
        return params, {"image_encoder": enc_stats}, StepLog(jnp.int32(-1))

    def info_nce(a, b):
        logits = l2_normalize(a) @ l2_normalize(b).T / 0.2
        labels = jnp.arange(len(a))
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def loss(params, batch_stats, state, batch, key, step, *, group):
        h, stats = apply_module(
            image_encoder, params, batch_stats, "image_encoder", batch["images"], train=True
        )
        z_image = image_head.apply({"params": params["image_head"]}, h)
        z_tokens = token_encoder.apply(
            {"params": params["token_encoder"]}, batch["tokens"], train=True
        )
        z_audio = audio_encoder.apply(
            {"params": params["audio_encoder"]}, batch["audio"], train=True
        )
        value = info_nce(z_image, z_audio) + info_nce(z_image, z_tokens)
        metrics = {"loss": value, "step_seen": step}
        return value, LossOutput({"image_encoder": stats}, metrics, outputs={"step": step})

    def update_state(state, params, outputs, step):
        return StepLog(outputs["step"])

    representations = {
        "image": module_representation(image_encoder, "image_encoder", "images"),
        "audio": module_representation(audio_encoder, "audio_encoder", "audio"),
    }
    return Objective("toy_multimodal", init, loss, update_state, representations=representations)


@register_objective("toy_no_loss_metric")
def make_no_loss_metric(config, input_spec):
    """Trains like the autoencoder but logs its loss under another name: the trainer refuses."""
    from ssl_jax.objectives import autoencoder

    base = autoencoder.make(config, input_spec)

    def loss(*args, **kwargs):
        value, out = base.loss(*args, **kwargs)
        return value, out._replace(metrics={"reconstruction": value})

    return Objective("toy_no_loss_metric", base.init, loss)
