"""SupCon: the positives are exactly the same-label views of the whole global batch (8 devices
give the NumPy loss over the global batch, which a per-shard computation does not), with every
image its own label it is SimCLR's NT-Xent, and it learns on digits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import losses
from tests.learning import learning_config, pretrain
from tests.objective_steps import Run

DEVICES = 8


@pytest.fixture(scope="module")
def run():
    return Run("supcon", num_devices=DEVICES)


@pytest.fixture(scope="module")
def step(run):
    """The initial state, the first global batch (sharded over the 8 devices) and the first
    step's key, and the objective's loss jitted with the state replicated and the batch
    sharded over the mesh."""
    state = jax.device_get(run.state)
    sharding = NamedSharding(run.mesh, P("data"))
    _, batch = next(run.dataset.train_batches(run.config.batch_size, run.config.seed, 0, sharding))
    key = jax.random.fold_in(state.rng, state.step)
    loss = jax.jit(lambda s, b, k: run.loss(s, b, k))
    replicated = NamedSharding(run.mesh, P())
    return state, batch, key, lambda s, b, k: loss(jax.device_put(s, replicated), b, k)


def ref_supcon(z, positive, temperature):
    """SupCon (Khosla et al. Eq. 2) in float64 NumPy with the positives given as a mask."""
    u = np.asarray(z, np.float64)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    logits = u @ u.T / temperature
    np.fill_diagonal(logits, -np.inf)
    top = logits.max(1, keepdims=True)
    log_prob = logits - top - np.log(np.sum(np.exp(logits - top), 1, keepdims=True))
    per_anchor = [-np.mean(log_prob[i, positive[i]]) for i in range(len(u)) if positive[i].any()]
    return np.mean(per_anchor)


def label_positives(labels):
    same = labels[:, None] == labels[None, :]
    return same & ~np.eye(len(labels), dtype=bool)


def test_positives_are_the_same_label_views_of_the_whole_global_batch(run, step):
    state, batch, key, loss = step
    assert len(batch["images"].sharding.device_set) == DEVICES
    # The loss over the 8 devices is the NumPy loss over the whole global batch ...
    value, out = loss(state, batch, key)
    z = np.asarray(out.outputs["projections"])
    labels = np.asarray(batch["labels"])
    view_labels = np.concatenate([labels, labels])
    temperature = run.config.objective.temperature
    np.testing.assert_allclose(
        value, ref_supcon(z, label_positives(view_labels), temperature), rtol=1e-5
    )

    # ... which each device's views on their own (positives and negatives from one shard only,
    # the loss averaged over devices) are not: every shard's labels recur on the others.
    per_device = len(labels) // DEVICES
    shard_values = []
    for d in range(DEVICES):
        rows = np.arange(d * per_device, (d + 1) * per_device)
        views = np.concatenate([rows, rows + len(labels)])
        shard_values.append(ref_supcon(z[views], label_positives(view_labels[views]), temperature))
    assert abs(np.mean(shard_values) - float(value)) > 0.05, (np.mean(shard_values), value)
    assert all(np.isin(labels[:per_device], labels[per_device:]))  # positives across shards


def test_with_distinct_labels_supcon_is_nt_xent(run, step):
    state, batch, key, loss = step
    value, out = loss(state, batch, key)
    z1, z2 = np.split(np.asarray(out.outputs["projections"]), 2)
    nt_xent = losses.nt_xent(z1, z2, run.config.objective.temperature)
    # Every image its own class: the only positive of a view is the other view of its image.
    distinct = {**batch, "labels": jax.device_put(jnp.arange(len(z1)), batch["labels"].sharding)}
    np.testing.assert_allclose(loss(state, distinct, key)[0], nt_xent, rtol=1e-5)
    # With the digits' labels the positives are more than the view pairs: another loss.
    assert abs(float(value) - float(nt_xent)) > 0.05, (value, nt_xent)


def test_supcon_learns_on_digits(tmp_path):
    config = learning_config(
        "supcon", num_steps=100, projector=dict(hidden_dims=(256,), output_dim=64)
    )
    scores = pretrain(config, tmp_path)
    knn, linear = scores["knn"], scores["linear"]
    # Measured (trained / random init on 300 held-out digits): seed 0 kNN 0.970 / 0.853, linear
    # 0.963 / 0.853; seed 1 kNN 0.957 / 0.907, linear 0.963 / 0.900. Smallest kNN gap 0.050.
    assert knn[0] > knn[1] + 0.03, scores
    assert linear[0] >= linear[1], scores
