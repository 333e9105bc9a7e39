"""Optimizers from the config: SGD with momentum, AdamW and LARS, with warmup + cosine decay
(or linear decay, ``optim.decay="linear"``, word2vec's schedule).

Weight decay (and LARS's trust ratio) skip biases and normalisation parameters: every
parameter with fewer than two dimensions.
"""

import math

import jax
import optax

from ssl_jax.errors import UserError

OPTIMIZERS = ("sgd", "adamw", "lars")
LR_SCALINGS = ("none", "linear", "sqrt")
DECAYS = ("cosine", "linear")


def scaled_learning_rate(optim_config, global_batch: int) -> float:
    """The peak learning rate: ``lr``, ``lr·B/256`` or ``lr·sqrt(B/256)`` by ``lr_scaling``."""
    scaling = optim_config.lr_scaling
    if scaling not in LR_SCALINGS:
        raise UserError(f"optim.lr_scaling must be one of {LR_SCALINGS}, got {scaling!r}.")
    factor = {"none": 1.0, "linear": global_batch / 256, "sqrt": math.sqrt(global_batch / 256)}
    return optim_config.lr * factor[scaling]


def learning_rate_schedule(optim_config, total_steps: int, global_batch: int) -> optax.Schedule:
    """Linear warmup from 0 to the peak, then decay to ``peak·end_lr_fraction`` at the last step.

    The decay is a half cosine (``optim.decay="cosine"``, the default) or a straight line
    (``"linear"``: word2vec's α, which falls linearly with the words seen).
    """
    peak = scaled_learning_rate(optim_config, global_batch)
    warmup = min(optim_config.warmup_steps, max(total_steps - 1, 0))
    decay = optim_config.get("decay", "cosine")
    if decay not in DECAYS:
        raise UserError(f"optim.decay must be one of {DECAYS}, got {decay!r}.")
    if decay == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0 if warmup else peak,
            peak_value=peak,
            warmup_steps=warmup,
            decay_steps=max(total_steps, warmup + 1),
            end_value=peak * optim_config.end_lr_fraction,
        )
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, peak, warmup),
            optax.linear_schedule(
                peak, peak * optim_config.end_lr_fraction, max(total_steps - warmup, 1)
            ),
        ],
        boundaries=[warmup],
    )


def decay_mask(params):
    """True for the parameters that take weight decay: weights, not biases or norm scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(optim_config, total_steps: int, global_batch: int):
    """Returns ``(optax.GradientTransformation, schedule)`` for one parameter group."""
    name = optim_config.name
    if name not in OPTIMIZERS:
        raise UserError(f"optim.name must be one of {OPTIMIZERS}, got {name!r}.")
    schedule = learning_rate_schedule(optim_config, total_steps, global_batch)
    wd = optim_config.weight_decay
    if name == "sgd":
        tx = optax.chain(
            optax.add_decayed_weights(wd, mask=decay_mask),
            optax.sgd(schedule, momentum=optim_config.momentum),
        )
    elif name == "adamw":
        tx = optax.adamw(
            schedule, b1=optim_config.b1, b2=optim_config.b2, weight_decay=wd, mask=decay_mask
        )
    else:
        tx = optax.lars(
            schedule,
            weight_decay=wd,
            weight_decay_mask=decay_mask,
            trust_ratio_mask=decay_mask,
            momentum=optim_config.momentum,
        )
    if optim_config.clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(optim_config.clip_norm), tx)
    return tx, schedule
