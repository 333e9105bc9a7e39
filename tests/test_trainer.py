"""The trainer: data parallelism equals one device, objective state, parameter groups."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import train
from ssl_jax.data import pipeline
from ssl_jax.data.spec import decoded_spec, sample_batch
from ssl_jax.models import ProjectionHead, build_encoder
from ssl_jax.objectives.base import NoState, apply_module
from ssl_jax.objectives.simclr import l2_normalize
from tests.configs import tiny_config


def start_run(config, dataset, num_devices):
    """(state, jitted step, batch iterator) for ``config`` on a mesh of ``num_devices``."""
    mesh = train.make_mesh(num_devices)
    objective, optimizers, schedules = train.build_objective(config, dataset.spec)
    sample = sample_batch(decoded_spec(dataset.spec))
    init = functools.partial(train.init_state, objective, optimizers, seed=config.seed)
    state = jax.jit(init, out_shardings=NamedSharding(mesh, P()))(sample)
    step = train.compile_train_step(objective, optimizers, schedules, mesh)
    data = pipeline.batches(
        dataset, config.batch_size, config.seed, 0, NamedSharding(mesh, P("data"))
    )
    return state, step, data, objective


def run_steps(config, dataset, num_devices, num_steps):
    state, step, data, _ = start_run(config, dataset, num_devices)
    losses = []
    for _ in range(num_steps):
        _, batch = next(data)
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"] if "loss" in metrics else metrics["generator/loss"]))
    return jax.device_get(state), losses


@pytest.mark.parametrize("objective", ["simclr", "toy_ema_queue", "toy_alternating"])
def test_eight_devices_reproduce_one_device(objective, digits):
    assert len(jax.devices()) == 8, "conftest should give 8 fake CPU devices"
    config = tiny_config(objective)
    config.optim.name = "sgd"
    config.optim.lr = 0.05
    one, losses_one = run_steps(config, digits, num_devices=1, num_steps=2)
    eight, losses_eight = run_steps(config, digits, num_devices=8, num_steps=2)
    np.testing.assert_allclose(losses_eight, losses_one, rtol=1e-5)
    # float32 sums taken in another order over 8 shards: entries near zero (queue keys, SGD
    # updates of small weights) differ by a few 1e-6 in absolute terms, nothing more.
    for name in ("params", "batch_stats", "objective_state", "opt_state"):
        jax.tree.map(
            functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=5e-6),
            getattr(eight, name),
            getattr(one, name),
        )


def test_state_prints_as_a_readable_outline(digits):
    state, *_ = start_run(tiny_config("toy_ema_queue"), digits, num_devices=1)
    text = repr(state)
    assert text.startswith("TrainState(")
    assert "['params']['encoder']" in text and "['objective_state'].queue: float32[96×8]" in text
    assert "numbers" in text.splitlines()[-1]


def test_ema_target_moves_by_the_ema_rule_and_gets_no_gradient(digits):
    config = tiny_config("toy_ema_queue", momentum=0.75)
    state0, step, data, _ = start_run(config, digits, num_devices=1)
    state0 = jax.device_get(state0)
    _, batch = next(data)
    state1 = jax.device_get(step(state0, batch)[0])
    expected = jax.tree.map(
        lambda t, p: 0.75 * t + 0.25 * p, state0.objective_state.target_params, state1.params
    )
    jax.tree.map(
        functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7),
        state1.objective_state.target_params,
        expected,
    )
    # The online parameters did move, so the EMA identity above is not vacuous.
    moved = jax.tree.map(
        lambda a, b: np.abs(a - b).max(), state1.params, state0.objective_state.target_params
    )
    assert max(jax.tree.leaves(moved)) > 1e-4


def test_queue_is_fifo_and_holds_the_keys_of_the_whole_global_batch(digits):
    config = tiny_config("toy_ema_queue")
    batch_size, queue_size = config.batch_size, config.objective.queue_size
    state0, step, data, _ = start_run(config, digits, num_devices=8)
    state0 = jax.device_get(state0)
    _, batch1 = next(data)
    state1 = jax.device_get(step(state0, batch1)[0])
    _, batch2 = next(data)
    state2 = jax.device_get(step(state1, batch2)[0])

    # The keys of step 1, computed here on one device from the full global batch with the
    # step-0 target network: every example of every device's shard is in the queue.
    target = state0.objective_state
    images = np.asarray(jax.device_get(batch1["images"]))  # decoded: float32 in [0, 1]
    encoder = build_encoder(config.model, digits.image_shape)
    projector = ProjectionHead(hidden_dims=(16,), output_dim=config.objective.dim)
    stats = target.target_batch_stats
    h, _ = apply_module(encoder, target.target_params, stats, "encoder", images, train=False)
    z, _ = apply_module(projector, target.target_params, stats, "projector", h, train=False)
    keys1 = np.asarray(l2_normalize(z))

    queue1 = state1.objective_state.queue
    assert queue1.shape == (queue_size, config.objective.dim)
    np.testing.assert_allclose(queue1[:batch_size], keys1, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(queue1[batch_size:], target.queue[:-batch_size])
    # FIFO: one step later the step-1 keys sit one batch further back.
    queue2 = state2.objective_state.queue
    np.testing.assert_array_equal(queue2[batch_size:], queue1[:-batch_size])


def test_two_parameter_groups_alternate_with_their_own_optimizers(digits):
    config = tiny_config("toy_alternating")
    config.optim.name = "sgd"
    config.optim.lr = 0.1
    config.optim.momentum = 0.0
    config.optim_groups = {"generator": config.optim.copy_and_resolve_references()}
    config.optim_groups.generator.lr = 0.01
    state0, step, data, objective = start_run(config, digits, num_devices=1)
    state0 = jax.device_get(state0)
    _, batch = next(data)
    batch = jax.device_get(batch)
    state1 = jax.device_get(step(state0, batch)[0])

    # The same step by hand: D steps with lr 0.1 first, then G with lr 0.01 against the new D.
    images = jnp.asarray(batch["images"])  # decoded: float32 in [0, 1]
    key = jax.random.fold_in(state0.rng, 0)
    groups = objective.param_groups

    def grads_of(params, stats, group, index):
        trainable = {m: params[m] for m in groups[group]}

        def loss(t):
            return objective.loss(
                {**params, **t},
                stats,
                NoState(),
                {"images": images, "labels": batch["labels"]},
                jax.random.fold_in(key, index),
                jnp.int32(0),
                group=group,
            )

        (_, out), grads = jax.value_and_grad(loss, has_aux=True)(trainable)
        return grads, out.batch_stats

    grads_of = jax.jit(grads_of, static_argnums=(2, 3))  # one program, not op-by-op dispatch
    d_grads, stats = grads_of(state0.params, state0.batch_stats, "discriminator", 0)
    params = {
        **state0.params,
        **jax.tree.map(
            lambda p, g: p - 0.1 * g,
            {m: state0.params[m] for m in groups["discriminator"]},
            d_grads,
        ),
    }
    g_grads, _ = grads_of(params, {**state0.batch_stats, **stats}, "generator", 1)
    expected_generator = jax.tree.map(
        lambda p, g: p - 0.01 * g, params["generator"], g_grads["generator"]
    )

    for module in ("encoder", "disc_head"):
        jax.tree.map(
            functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7),
            state1.params[module],
            params[module],
        )
    jax.tree.map(
        functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7),
        state1.params["generator"],
        expected_generator,
    )
    assert set(state1.opt_state) == {"discriminator", "generator"}


def test_learning_rate_scales_with_global_batch():
    from ssl_jax.optim import scaled_learning_rate

    config = tiny_config()
    config.optim.lr = 0.3
    config.optim.lr_scaling = "linear"
    assert scaled_learning_rate(config.optim, 1024) == pytest.approx(1.2)
    config.optim.lr_scaling = "sqrt"
    assert scaled_learning_rate(config.optim, 1024) == pytest.approx(0.6)


def test_weight_decay_skips_biases_and_norm_parameters():
    from ssl_jax.optim import make_optimizer

    config = tiny_config()
    config.optim.name = "adamw"
    config.optim.weight_decay = 0.5
    config.optim.lr = 0.1
    config.optim.warmup_steps = 0
    tx, _ = make_optimizer(config.optim, total_steps=10, global_batch=32)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2), "scale": jnp.ones(2)}
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero_grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    assert np.all(np.asarray(new["kernel"]) < 1.0)  # decayed
    np.testing.assert_array_equal(new["bias"], params["bias"])
    np.testing.assert_array_equal(new["scale"], params["scale"])


def test_bfloat16_compute_keeps_float32_params_and_tracks_float32_loss(digits):
    config = tiny_config()
    _, losses32 = run_steps(config, digits, num_devices=1, num_steps=1)
    config.compute_dtype = "bfloat16"
    state, losses16 = run_steps(config, digits, num_devices=1, num_steps=1)
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(state.params))
    assert losses16[0] == pytest.approx(losses32[0], rel=0.02)
