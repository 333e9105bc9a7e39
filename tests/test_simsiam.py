"""SimSiam: the stop-gradient removes exactly the gradient through the target projection (and
the collapse ablation keeps it); the method learns on real digits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import augment
from ssl_jax.data.spec import decoded_spec
from ssl_jax.losses import l2_normalize
from ssl_jax.objectives import make_objective
from ssl_jax.objectives.siamese import apply_chain, build_chain
from tests.learning import learning_config, pretrain
from tests.objective_steps import Run


@pytest.fixture(scope="module")
def run():
    return Run("simsiam")


def initial_step(run):
    """The state at initialisation, the first batch and the key a first step would use (no
    step is compiled: only gradients are compared)."""
    state = jax.device_get(run.state)
    sharding = NamedSharding(run.mesh, P("data"))
    _, batch = next(run.dataset.train_batches(run.config.batch_size, run.config.seed, 0, sharding))
    return state, batch, jax.random.fold_in(state.rng, state.step)


def split_branches(run):
    """L(θ_p, θ_z): SimSiam's symmetric −cos with the predictions from weights θ_p and the
    target projections from weights θ_z, no stop-gradient. At θ_p = θ_z = θ, L is the loss and
    ∂L/∂θ_z the gradient through the target branch."""
    cfg = run.config.objective
    image_spec = decoded_spec(run.dataset.spec)["images"]
    chain = build_chain(run.config, image_spec, projector=cfg.projector, predictor=cfg.predictor)

    def loss(online, target, batch_stats, batch, key):
        both = jnp.concatenate(augment.make_views(batch["images"], key, run.config.aug)[:2])
        p1, p2 = jnp.split(
            apply_chain(chain, online, batch_stats, both, train=True)[0]["predictor"], 2
        )
        z1, z2 = jnp.split(
            apply_chain(chain, target, batch_stats, both, train=True)[0]["projector"], 2
        )

        def d(p, z):
            return -jnp.mean(jnp.sum(l2_normalize(p) * l2_normalize(z), -1))

        return d(p1, z2) / 2 + d(p2, z1) / 2

    return loss


def objective_loss(objective):
    def loss(params, state, batch, key):
        return objective.loss(
            params,
            state.batch_stats,
            state.objective_state,
            batch,
            key,
            state.step,
            group="model",
        )[0]

    return loss


def test_stop_gradient_removes_exactly_the_target_branch(run):
    state, batch, key = initial_step(run)
    ablation_config = run.config.copy_and_resolve_references()
    ablation_config.objective.stop_gradient = False
    ablation = make_objective(ablation_config, decoded_spec(run.dataset.spec))
    split, with_sg, without_sg = (
        split_branches(run),
        objective_loss(run.objective),
        objective_loss(ablation),
    )

    @jax.jit  # the three gradients in one program: the views and the encoder compile once
    def gradients(state, batch, key):
        p = state.params
        return (
            jax.grad(split, argnums=(0, 1))(p, p, state.batch_stats, batch, key),
            jax.grad(with_sg)(p, state, batch, key),
            jax.grad(without_sg)(p, state, batch, key),
        )

    (online, through_target), with_sg, without_sg = gradients(state, batch, key)

    def close(got, want):
        scale = max(float(np.abs(w).max()) for w in jax.tree.leaves(want))
        jax.tree.map(
            lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * scale),
            got,
            want,
        )

    def norm(tree):
        return np.sqrt(sum(np.sum(np.square(g)) for g in jax.tree.leaves(tree)))

    # The target branch carries a gradient comparable to the predictions' own, in every module
    # it passes through ...
    for module in ("encoder", "projector"):
        assert norm(through_target[module]) > 0.1 * norm(online[module]), module
    assert all(np.all(g == 0) for g in jax.tree.leaves(through_target["predictor"]))
    # ... which SimSiam's stop-gradient removes exactly, and the ablation keeps.
    close(with_sg, online)
    close(without_sg, jax.tree.map(jnp.add, online, through_target))


def test_simsiam_learns_on_digits(tmp_path):
    config = learning_config(
        "simsiam",
        num_steps=100,
        projector=dict(hidden_dims=(256,), output_dim=64, last_bn=True),
        predictor=dict(hidden_dims=(64,), output_dim=64),
    )
    scores = pretrain(config, tmp_path)
    knn, linear = scores["knn"], scores["linear"]
    # Measured (trained / random init, 300 held-out digits): seed 0 kNN 0.907 / 0.853, linear
    # 0.907 / 0.853; seed 1 kNN 0.923 / 0.907, linear 0.920 / 0.900. Smallest kNN gap 0.017.
    assert knn[0] > knn[1] + 0.01, scores
    assert linear[0] > linear[1], scores
