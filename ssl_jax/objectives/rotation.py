"""Rotation prediction (Gidaris et al. 2018): classify by how many quarter turns an image was
rotated.

Notes 001 §3.3.2 ("image rotation"), 002 §2.6. For an image x and k ∈ {0, 1, 2, 3}, R_k(x) is
x turned counter-clockwise by k·90° (`ssl_jax.pretext.rotate`); the shared encoder f and a
classifier head g give logits g(f(R_k(x))) ∈ R⁴ and the loss is the cross-entropy of k:

    L = (1/|S|) Σ_{(x, k) ∈ S} −log softmax(g(f(R_k(x))))_k

``all_rotations=True`` (the paper's best setting): S holds every image of the batch in all four
rotations (4B examples a step). ``False``: one uniformly drawn rotation per image (B examples).
To tell the rotations apart the network has to find the object's up, which needs the object
(where its parts are); an upright-looking texture does not say.

Non-square images are centre-cropped to their largest square first (a quarter turn would change
their shape). ``augment=True`` takes one view of ``config.aug`` (crops, flips, colour) before
rotating, as the paper's CIFAR runs did with crops and flips. Logged: ``pretext_accuracy``.

Modules: ``encoder`` (``config.model``; the readable representation, on whole upright images)
and ``head`` (an MLP, ``head_hidden_dims``, to 4 logits).
"""

import jax
import jax.numpy as jnp

from ssl_jax import pretext
from ssl_jax.data.spec import require
from ssl_jax.models import ProjectionHead, build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, apply_module, init_module

DEFAULTS = dict(all_rotations=True, head_hidden_dims=(256,), augment=False)


@register_objective("rotation")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "rotation", kind="images")
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    side = min(image_spec.shape[:2])
    pretext.check_encoder_reads_parts_and_images(
        encoder,
        (side, side, image_spec.shape[2]),
        image_spec.shape,
        objective="rotation",
        part="square crops",
        model_name=config.model.name,
    )
    head = ProjectionHead(
        hidden_dims=tuple(cfg.head_hidden_dims), output_dim=pretext.NUM_ROTATIONS, dtype=dtype
    )

    def init(key, sample_batch):
        images = pretext.square_centre_crop(sample_batch["images"])
        enc_key, head_key = jax.random.split(key)
        enc_params, enc_stats = init_module(encoder, enc_key, images)
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, images, train=False)
        head_params, head_stats = init_module(head, head_key, h)
        params = {"encoder": enc_params, "head": head_params}
        return params, {"encoder": enc_stats, "head": head_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step, group
        view_key, rotation_key = jax.random.split(key)
        images = batch["images"]
        if cfg.augment:
            images = pretext.augmented_view(images, view_key, config.aug)
        images = pretext.square_centre_crop(images)
        if cfg.all_rotations:
            rotated, labels = pretext.every_rotation(images)
        else:
            rotated, labels = pretext.random_rotations(images, rotation_key)
        h, enc_stats = apply_module(encoder, params, batch_stats, "encoder", rotated, train=True)
        logits, head_stats = apply_module(head, params, batch_stats, "head", h, train=True)
        value, accuracy = pretext.classification_loss(logits, labels)
        metrics = {"loss": value, "pretext_accuracy": accuracy}
        return value, LossOutput({"encoder": enc_stats, "head": head_stats}, metrics)

    return Objective(name="rotation", init=init, loss=loss)
