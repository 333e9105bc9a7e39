"""MoCo v3: the key network moves by the EMA rule with the scheduled momentum, the state holds
no queue, and the negatives are the whole global batch — the loss on 8 devices is InfoNCE over
the keys of the whole global batch, and not a mean of per-device losses; the method learns on
real digits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import augment
from ssl_jax.data.spec import decoded_spec
from ssl_jax.losses import batch_info_nce
from ssl_jax.objectives.siamese import apply_chain, build_chain
from ssl_jax.objectives.targets import cosine_momentum
from tests.learning import learning_config, pretrain
from tests.objective_steps import Run


@pytest.fixture(scope="module")
def run():
    return Run("moco_v3", num_devices=8, momentum=0.9)


def test_key_network_moves_by_the_ema_rule_with_the_scheduled_momentum(run):
    for _ in range(2):
        before, after, _, _, _ = run.steps()
        m = float(cosine_momentum(before.step, run.config.num_steps, 0.9))
        assert 0.9 < m < 1.0 or before.step == 0
        for module in ("encoder", "projector"):
            want = jax.tree.map(
                lambda t, o, m=m: m * t + (1 - m) * o,
                before.objective_state.target.params[module],
                after.params[module],
            )
            jax.tree.map(
                lambda w, g: np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7),
                want,
                after.objective_state.target.params[module],
            )
    # The state is the key network and nothing else: no queue of keys.
    assert type(after.objective_state)._fields == ("target",)
    assert set(after.objective_state.target.params) == {"encoder", "projector"}


def ctr_terms(run, state, batch, key):
    """The queries q [2, B, D] (view 1, view 2) and keys k of the step, recomputed from the
    networks' modules outside the objective."""
    cfg = run.config.objective
    image_spec = decoded_spec(run.dataset.spec)["images"]
    online = build_chain(run.config, image_spec, projector=cfg.projector, predictor=cfg.predictor)
    both = jnp.concatenate(augment.make_views(batch["images"], key, run.config.aug)[:2])
    q = apply_chain(online, state.params, state.batch_stats, both, train=True)[0]["predictor"]
    target = state.objective_state.target
    k = apply_chain(online[:2], target.params, target.batch_stats, both, train=True)[0]
    return jnp.stack(jnp.split(q, 2)), jnp.stack(jnp.split(k["projector"], 2))


def test_negatives_span_the_global_batch(run):
    state, _, batch, key, _ = run.steps()
    assert len(batch["images"].sharding.device_set) == 8

    @jax.jit  # the loss and its terms in one program: the views and the networks compile once
    def loss_and_terms(state, batch, key):
        return run.loss(state, batch, key)[0], ctr_terms(run, state, batch, key)

    on_mesh, (q, k) = jax.device_get(
        loss_and_terms(
            jax.device_put(state, NamedSharding(run.mesh, P())),
            jax.device_put(batch, NamedSharding(run.mesh, P("data"))),
            key,
        )
    )

    # What the loss on the mesh is: 2τ·InfoNCE over the B keys of the global batch, both
    # directions ...
    tau = run.config.objective.temperature

    def ctr(q, k):
        return 2 * tau * batch_info_nce(q[0], k[1], tau) + 2 * tau * batch_info_nce(q[1], k[0], tau)

    np.testing.assert_allclose(float(on_mesh), float(ctr(q, k)), rtol=1e-5)
    # ... and not what each device's 4 examples would give (the check above would see it).
    shards = [ctr(q[:, i : i + 4], k[:, i : i + 4]) for i in range(0, q.shape[1], 4)]
    assert abs(float(np.mean(shards)) - float(on_mesh)) > 0.1 * abs(float(on_mesh))


def test_moco_v3_learns_on_digits(tmp_path):
    config = learning_config(
        "moco_v3",
        num_steps=100,
        projector=dict(hidden_dims=(256,), output_dim=64, last_bn=True),
        predictor=dict(hidden_dims=(256,), output_dim=64),
    )
    scores = pretrain(config, tmp_path)
    knn, linear = scores["knn"], scores["linear"]
    # Measured (trained / random init, 300 held-out digits): seed 0 kNN 0.950 / 0.853, linear
    # 0.950 / 0.853; seed 1 kNN 0.920 / 0.907, linear 0.927 / 0.900. Smallest kNN gap 0.013.
    assert knn[0] > knn[1] + 0.01, scores
    assert linear[0] > linear[1], scores
