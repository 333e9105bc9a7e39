"""Barlow Twins and VICReg: their statistics (cross-correlation; variances and covariances)
span the global batch — the loss on 8 devices is the criterion of the whole global batch's
projections, and not a mean of per-device losses; VICReg's variance hinge is 0 once every
dimension's std is ≥ 1; both learn on real digits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import augment
from ssl_jax.data.spec import decoded_spec
from ssl_jax.losses import barlow_twins_loss, hsic_loss, vicreg_loss
from ssl_jax.objectives import make_objective
from ssl_jax.objectives.siamese import apply_chain, build_chain
from tests.learning import learning_config, pretrain
from tests.objective_steps import Run

DEVICES = 8


@pytest.fixture(scope="module")
def barlow():
    return Run("barlow_twins", num_devices=DEVICES)


@pytest.fixture(scope="module")
def vicreg():
    return Run("vicreg", num_devices=DEVICES)


def initial_step(run):
    """The state at initialisation, the first batch (sharded over the mesh) and the key a first
    step would use; no training step is compiled."""
    state = jax.device_get(run.state)
    sharding = NamedSharding(run.mesh, P("data"))
    _, batch = next(run.dataset.train_batches(run.config.batch_size, run.config.seed, 0, sharding))
    return state, batch, jax.random.fold_in(state.rng, state.step)


def hsic_variant(run):
    config = run.config.copy_and_resolve_references()
    config.objective.off_diagonal = "hsic"
    return make_objective(config, decoded_spec(run.dataset.spec))


def evaluation(run, *others):
    """``(state, batch, key) -> ([(loss, metrics)] of the run's objective and of ``others``,
    z₁, z₂)``, with z₁, z₂ the step's projections recomputed from the modules outside the
    objectives. One program, run with the state replicated and the batch sharded over the
    mesh: the views and the encoder are compiled once for all of it."""
    objectives = (run.objective, *others)
    image_spec = decoded_spec(run.dataset.spec)["images"]
    chain = build_chain(run.config, image_spec, projector=run.config.objective.projector)

    @jax.jit
    def evaluate(state, batch, key):
        losses = []
        for objective in objectives:
            value, out = objective.loss(
                state.params,
                state.batch_stats,
                state.objective_state,
                batch,
                key,
                state.step,
                group="model",
            )
            losses.append((value, out.metrics))
        both = jnp.concatenate(augment.make_views(batch["images"], key, run.config.aug)[:2])
        z = apply_chain(chain, state.params, state.batch_stats, both, train=True)[0]["projector"]
        return losses, *jnp.split(z, 2)

    def on_mesh(state, batch, key):
        return jax.device_get(
            evaluate(
                jax.device_put(state, NamedSharding(run.mesh, P())),
                jax.device_put(batch, NamedSharding(run.mesh, P("data"))),
                key,
            )
        )

    return on_mesh


def check_spans_the_global_batch(run, criterion, losses, z1, z2):
    """The loss on the mesh (``losses[0]``) = ``criterion`` of the global batch's projections,
    and differs from the mean of ``criterion`` over each device's shard of them."""
    mesh_loss = float(losses[0][0])
    np.testing.assert_allclose(mesh_loss, float(criterion(z1, z2)), rtol=1e-5)
    shard = z1.shape[0] // DEVICES
    per_device = [
        float(criterion(z1[i : i + shard], z2[i : i + shard])) for i in range(0, z1.shape[0], shard)
    ]
    # A per-device computation gives another loss, which the equality above would catch.
    assert abs(np.mean(per_device) - mesh_loss) > 0.1 * abs(mesh_loss), per_device


@pytest.fixture(scope="module")
def barlow_step(barlow):
    """The first step's state, batch and key, with the Barlow Twins loss, its HSIC variant's
    loss and the projections there (computed on the 8-device mesh)."""
    state, batch, key = initial_step(barlow)
    assert len(batch["images"].sharding.device_set) == DEVICES
    return evaluation(barlow, hsic_variant(barlow))(state, batch, key)


def test_barlow_twins_cross_correlation_spans_every_device(barlow, barlow_step):
    cfg = barlow.config.objective
    check_spans_the_global_batch(
        barlow, lambda z1, z2: cfg.scale_loss * barlow_twins_loss(z1, z2, cfg.lambd), *barlow_step
    )


def test_barlow_twins_hsic_variant_is_the_hsic_loss(barlow, barlow_step):
    losses, z1, z2 = barlow_step
    value = float(losses[1][0])
    lambd = barlow.config.objective.lambd
    np.testing.assert_allclose(value, float(hsic_loss(z1, z2, lambd)), rtol=1e-5)
    assert abs(value - float(barlow_twins_loss(z1, z2, lambd))) > 1e-2


def test_vicreg_variance_and_covariance_span_every_device(vicreg):
    cfg = vicreg.config.objective
    state, batch, key = initial_step(vicreg)
    assert len(batch["images"].sharding.device_set) == DEVICES
    evaluate = evaluation(vicreg)
    check_spans_the_global_batch(
        vicreg,
        lambda z1, z2: vicreg_loss(z1, z2, cfg.sim_coeff, cfg.std_coeff, cfg.cov_coeff),
        *evaluate(state, batch, key),
    )

    # The variance hinge max(0, 1 − std) is 0 exactly once every dimension's std is ≥ 1: scale
    # the projector's last (linear, un-normalised) layer up, and then down for the contrast.
    last = sorted(k for k in state.params["projector"] if k.startswith("Dense"))[-1]

    def scaled(factor):
        layer = jax.tree.map(lambda w: w * factor, state.params["projector"][last])
        projector = {**state.params["projector"], last: layer}
        return state._replace(params={**state.params, "projector": projector})

    (big_loss,), z1, z2 = evaluate(scaled(1e3), batch, key)
    assert float(np.minimum(np.std(z1, axis=0, ddof=1), np.std(z2, axis=0, ddof=1)).min()) >= 1
    assert float(big_loss[1]["variance"]) == 0.0
    (small_loss,), _, _ = evaluate(scaled(1e-3), batch, key)
    assert float(small_loss[1]["variance"]) > 0.9  # std ≈ 0: hinge ≈ 1


@pytest.mark.parametrize("objective", ["barlow_twins", "vicreg"])
def test_learns_on_digits(objective, tmp_path):
    config = learning_config(
        objective, num_steps=100, projector=dict(hidden_dims=(256,), output_dim=64)
    )
    scores = pretrain(config, tmp_path)
    knn, linear = scores["knn"], scores["linear"]
    # Measured (trained / random init, 300 held-out digits), seeds 0 and 1:
    #   barlow_twins kNN 0.923 / 0.853, 0.930 / 0.907; linear 0.927 / 0.853, 0.940 / 0.900;
    #   vicreg       kNN 0.947 / 0.853, 0.930 / 0.907; linear 0.943 / 0.853, 0.947 / 0.900.
    # Smallest kNN gap 0.023.
    assert knn[0] > knn[1] + 0.015, scores
    assert linear[0] > linear[1], scores
