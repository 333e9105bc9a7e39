"""Pure helpers for objective state: EMA target networks and FIFO queues.

MoCo keeps a momentum encoder and a queue of keys (notes 002, MoCo; 001 §3.4.4), BYOL and
DINO a momentum target (001 §3.4.3). Both live in the objective state and are updated by
these functions in ``update_state``, after the optimizer step; no gradient reaches them.
"""

import jax
import jax.numpy as jnp


def ema_update(target, online, momentum):
    """θ_target ← m · θ_target + (1 − m) · θ_online, leaf by leaf."""
    return jax.tree.map(lambda t, o: momentum * t + (1.0 - momentum) * o, target, online)


def cosine_momentum(step, total_steps, base_momentum):
    """BYOL's schedule: m = 1 − (1 − m₀)(cos(π t / T) + 1) / 2, rising from m₀ to 1."""
    progress = jnp.clip(step / jnp.maximum(total_steps, 1), 0.0, 1.0)
    return 1.0 - (1.0 - base_momentum) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def fifo_enqueue(queue, items):
    """Puts ``items`` [B, D] at the front of ``queue`` [K, D] and drops the oldest B rows.

    Row 0 is the newest. ``items`` is the global batch (every device's keys), since the step
    runs in the global view.
    """
    return jnp.concatenate([items.astype(queue.dtype), queue])[: queue.shape[0]]
