"""Steps of an objective taken by hand, for tests of what makes a method that method: its
state before and after a step, and the loss's outputs at that step, on real digits."""

import functools

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import train
from ssl_jax.data import load_dataset
from ssl_jax.data.spec import decoded_spec, sample_batch
from tests.configs import tiny_config


def crops_only(config):
    """``config`` with views that are random crops alone: no flip, colour jitter, grayscale or
    blur. Each of those ops draws its own random numbers per view and example: with them, the
    views of a tiny config take about twice as long to compile (7 s against 3.6 s on 2 cores),
    in every program that makes views (the loss, a gradient, the step), and compiling dominates
    these tests. What they check does not depend on those ops."""
    config.aug.flip_prob = 0.0
    config.aug.jitter_prob = config.aug.grayscale_prob = config.aug.blur_prob = 0.0
    return config


class Run:
    """A tiny config of ``objective`` on digits over ``num_devices`` devices, stepped by hand.

    ``steps(n)`` takes n training steps and returns the states before and after the last one
    with the batch and PRNG key that step used, so a test can recompute what the step did.
    Without a ``config``, the views are crops only (`crops_only`).
    """

    def __init__(self, objective: str, num_devices: int = 1, config=None, **fields):
        self.config = config or crops_only(tiny_config(objective, **fields))
        self.config.num_devices = num_devices
        self.dataset = load_dataset(self.config.dataset)
        self.mesh = train.make_mesh(num_devices)
        self.objective, optimizers, schedules = train.build_objective(
            self.config, self.dataset.spec
        )
        init = functools.partial(train.init_state, self.objective, optimizers, seed=0)
        self.state = jax.jit(init, out_shardings=NamedSharding(self.mesh, P()))(
            sample_batch(decoded_spec(self.dataset.spec))
        )
        self.step_fn = train.compile_train_step(self.objective, optimizers, schedules, self.mesh)
        self._batches = self.dataset.train_batches(
            self.config.batch_size, self.config.seed, 0, NamedSharding(self.mesh, P("data"))
        )

    def steps(self, n: int = 1):
        """Takes ``n`` steps; returns ``(state_before, state_after, batch, key, metrics)`` of the
        last one (``key`` is the PRNG key the loss received)."""
        for _ in range(n):
            before = jax.device_get(self.state)
            _, batch = next(self._batches)
            key = jax.random.fold_in(self.state.rng, self.state.step)
            self.state, metrics = self.step_fn(self.state, batch)
        return before, jax.device_get(self.state), batch, key, jax.device_get(metrics)

    def loss(self, state, batch, key, objective=None, **overrides):
        """The objective's loss and `LossOutput` at ``state`` (``overrides`` replace fields of
        the state, e.g. ``objective_state=...``; ``objective`` another build of it, e.g. with
        other settings, over the same state)."""
        state = state._replace(**overrides)
        return (objective or self.objective).loss(
            state.params,
            state.batch_stats,
            state.objective_state,
            batch,
            key,
            state.step,
            group="model",
        )
