"""Classifiers trained by SGD on top of an encoder: the minibatch linear probe and fine-tuning.

Notes 001 §2.1.1 (linear probe: frozen features, a linear classifier) and §2.1.2 (fine-tuning:
every parameter trained, usually with a smaller learning rate for the pretrained part).

- `linear_probe_sgd`: the encoder is frozen (batch norm in inference mode); a linear head,
  optionally preceded by an affine-free batch norm of the features (as MAE's probe does), is
  trained with SGD + momentum (or LARS, ``optimizer="lars"``) and a cosine schedule; optional
  on-device augmentation.
- `finetune`: the encoder and the head are trained together, the encoder at
  ``backbone_lr_scale`` times the head's learning rate; batch norm in train mode. The head
  starts at zero (``head_init="zero"``) or from a linear probe fitted first on the frozen
  features (``head_init="linear_probe"``, LP-FT).

Both use fixed hyperparameters given as arguments and report the accuracy after the last
step (no selection on any split, so the held-out accuracy is an honest estimate); the
returned dict records every setting.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssl_jax import augment as augment_lib
from ssl_jax.data.pipeline import to_float_images
from ssl_jax.encoder import batched_apply
from ssl_jax.errors import UserError

OPTIMIZERS = ("sgd", "lars")


class _Head(nn.Module):
    num_classes: int
    feature_norm: bool = False  # affine-free batch norm of the features before the head
    zero_init: bool = True

    @nn.compact
    def __call__(self, h, *, train: bool):
        h = h.reshape(h.shape[0], -1).astype(jnp.float32)
        if self.feature_norm:
            h = nn.BatchNorm(
                use_running_average=not train, use_bias=False, use_scale=False, momentum=0.9
            )(h)
        init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        return nn.Dense(self.num_classes, kernel_init=init)(h)


def _check(train_images, train_labels, test_images, test_labels):
    for images, labels, split in (
        (train_images, train_labels, "train"),
        (test_images, test_labels, "test"),
    ):
        if len(images) != len(labels):
            raise UserError(
                f"{split}: {len(images)} images but {len(labels)} labels; give one label per image."
            )
    return int(max(np.max(train_labels), np.max(test_labels))) + 1


def _train_classifier(
    encoder,
    images,
    labels,
    *,
    num_classes,
    train_backbone,
    steps,
    batch_size,
    lr,
    backbone_lr_scale,
    weight_decay,
    feature_norm,
    head_params,
    augment_config,
    seed,
    optimizer="sgd",
):
    """Returns (encoder variables, head variables) after ``steps`` of SGD + momentum or LARS.

    Weight decay (and LARS's trust ratio) skip biases and normalisation scales (rank < 2).
    """
    if optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")
    module, enc_vars = encoder.module, encoder.variables
    head = _Head(num_classes, feature_norm=feature_norm, zero_init=head_params is None)
    key = jax.random.PRNGKey(seed)
    sample = to_float_images(jnp.asarray(images[:2]))
    features = module.apply(enc_vars, sample, train=False)
    head_vars = head.init(key, features, train=False)
    if head_params is not None:
        head_vars = {**head_vars, "params": head_params}
    params = {"encoder": enc_vars["params"], "head": head_vars["params"]}
    stats = {"encoder": enc_vars.get("batch_stats", {}), "head": head_vars.get("batch_stats", {})}

    schedule = optax.cosine_decay_schedule(lr, steps)
    matrices = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)

    def scaled(factor):
        group_lr = lambda s: schedule(s) * factor
        if optimizer == "lars":
            return optax.lars(
                group_lr,
                weight_decay=weight_decay,
                weight_decay_mask=matrices,
                trust_ratio_mask=matrices,
                momentum=0.9,
            )
        return optax.chain(
            optax.add_decayed_weights(weight_decay, mask=matrices),
            optax.sgd(group_lr, momentum=0.9),
        )

    tx = optax.multi_transform(
        {
            "head": scaled(1.0),
            "encoder": scaled(backbone_lr_scale) if train_backbone else optax.set_to_zero(),
        },
        {"encoder": "encoder", "head": "head"},
    )
    opt_state = tx.init(params)

    def loss_fn(params, stats, x, y, step_key):
        x = to_float_images(x)
        if augment_config is not None:
            x = augment_lib.make_views(x, step_key, augment_config)[0]
        enc_in = {"params": params["encoder"], "batch_stats": stats["encoder"]}
        if train_backbone:
            h, enc_updates = module.apply(enc_in, x, train=True, mutable=["batch_stats"])
            enc_stats = enc_updates["batch_stats"]
        else:
            h, enc_stats = (
                jax.lax.stop_gradient(module.apply(enc_in, x, train=False)),
                stats["encoder"],
            )
        logits, head_updates = head.apply(
            {"params": params["head"], "batch_stats": stats["head"]},
            h,
            train=True,
            mutable=["batch_stats"],
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, {"encoder": enc_stats, "head": head_updates.get("batch_stats", {})}

    @jax.jit
    def step(params, stats, opt_state, x, y, step_key):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, stats, x, y, step_key
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    rng = np.random.default_rng(seed)
    batch_size = min(batch_size, len(images))
    order, position = rng.permutation(len(images)), 0
    for t in range(steps):
        if position + batch_size > len(images):
            order, position = rng.permutation(len(images)), 0
        idx = order[position : position + batch_size]
        position += batch_size
        params, stats, opt_state, loss = step(
            params, stats, opt_state, images[idx], labels[idx], jax.random.fold_in(key, t)
        )
    if not np.isfinite(float(loss)):
        raise UserError(f"the classifier's loss became {float(loss)}; lower the learning rate.")
    encoder_vars = {"params": params["encoder"], "batch_stats": stats["encoder"]}
    head_vars = {"params": params["head"], "batch_stats": stats["head"]}
    return encoder_vars, head, head_vars


def _accuracy(encoder, encoder_vars, head, head_vars, images, labels, batch_size=256):
    @jax.jit
    def predict(x):
        h = encoder.module.apply(encoder_vars, to_float_images(x), train=False)
        return jnp.argmax(head.apply(head_vars, h, train=False), axis=-1)

    predictions = batched_apply(predict, np.asarray(images), batch_size)
    return float(np.mean(predictions == np.asarray(labels)))


def linear_probe_sgd(
    encoder,
    train_images,
    train_labels,
    test_images,
    test_labels,
    *,
    steps=1000,
    batch_size=256,
    lr=0.1,
    weight_decay=0.0,
    feature_norm=True,
    augment_config=None,
    seed=0,
    optimizer="sgd",
) -> dict:
    """A linear head on the frozen encoder, trained by SGD or LARS; returns accuracy, settings."""
    num_classes = _check(train_images, train_labels, test_images, test_labels)
    enc_vars, head, head_vars = _train_classifier(
        encoder,
        np.asarray(train_images),
        np.asarray(train_labels),
        num_classes=num_classes,
        train_backbone=False,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        backbone_lr_scale=0.0,
        weight_decay=weight_decay,
        feature_norm=feature_norm,
        head_params=None,
        augment_config=augment_config,
        seed=seed,
        optimizer=optimizer,
    )
    return {
        "protocol": "linear_sgd",
        "test_top1": _accuracy(encoder, enc_vars, head, head_vars, test_images, test_labels),
        "train_top1": _accuracy(encoder, enc_vars, head, head_vars, train_images, train_labels),
        "settings": {
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "schedule": "cosine",
            "optimizer": f"{optimizer} momentum 0.9",
            "weight_decay": weight_decay,
            "feature_norm": feature_norm,
            "augment": augment_config is not None,
            "seed": seed,
            "selection": "none (the last step is reported)",
        },
    }


def finetune(
    encoder,
    train_images,
    train_labels,
    test_images,
    test_labels,
    *,
    steps=1000,
    batch_size=128,
    lr=0.05,
    backbone_lr_scale=0.1,
    weight_decay=1e-4,
    head_init="zero",
    probe_steps=300,
    augment_config=None,
    seed=0,
    optimizer="sgd",
) -> dict:
    """Trains encoder and head together; returns test accuracy and every setting used."""
    if head_init not in ("zero", "linear_probe"):
        raise UserError(f"head_init must be 'zero' or 'linear_probe', got {head_init!r}.")
    num_classes = _check(train_images, train_labels, test_images, test_labels)
    train_images, train_labels = np.asarray(train_images), np.asarray(train_labels)
    head_params = None
    if head_init == "linear_probe":
        _, _, probe_vars = _train_classifier(
            encoder,
            train_images,
            train_labels,
            num_classes=num_classes,
            train_backbone=False,
            steps=probe_steps,
            batch_size=batch_size,
            lr=lr,
            backbone_lr_scale=0.0,
            weight_decay=0.0,
            feature_norm=False,
            head_params=None,
            augment_config=None,
            seed=seed,
            optimizer=optimizer,
        )
        head_params = probe_vars["params"]
    enc_vars, head, head_vars = _train_classifier(
        encoder,
        train_images,
        train_labels,
        num_classes=num_classes,
        train_backbone=True,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        backbone_lr_scale=backbone_lr_scale,
        weight_decay=weight_decay,
        feature_norm=False,
        head_params=head_params,
        augment_config=augment_config,
        seed=seed,
        optimizer=optimizer,
    )
    return {
        "protocol": "finetune",
        "test_top1": _accuracy(encoder, enc_vars, head, head_vars, test_images, test_labels),
        "train_top1": _accuracy(encoder, enc_vars, head, head_vars, train_images, train_labels),
        "settings": {
            "steps": steps,
            "batch_size": batch_size,
            "head_lr": lr,
            "backbone_lr": lr * backbone_lr_scale,
            "schedule": "cosine",
            "optimizer": f"{optimizer} momentum 0.9",
            "weight_decay": weight_decay,
            "head_init": head_init,
            "probe_steps": probe_steps if head_init != "zero" else 0,
            "augment": augment_config is not None,
            "seed": seed,
            "selection": "none (the last step is reported)",
        },
    }
