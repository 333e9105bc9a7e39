"""Metric learning: the triplet objective mines over every device's examples (8 devices give the
loss of the whole global batch, and a hard negative on another device's shard is found), its
options pick the positives and the mining they name; the margin contrastive objective uses
exactly the pairs its rule says; both learn on real digits.

One 8-device run of the triplet objective; the margin objective and the triplet's options are
evaluated with its parameters (every one of them is the same encoder → projector chain).
"""

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax.data.spec import decoded_spec
from ssl_jax.objectives import make_objective
from tests.configs import tiny_config, tiny_fields
from tests.learning import learning_config, pretrain
from tests.objective_steps import Run

DEVICES = 8
ANCHOR, COPY = 0, 21  # COPY lies on device 5's shard (4 examples per device)


@pytest.fixture(scope="module")
def run():
    # Views that are the image itself: a copy of an image is embedded exactly like it.
    config = tiny_config("triplet")
    config.aug.global_scale = (1.0, 1.0)
    config.aug.ratio = (1.0, 1.0)
    config.aug.jitter_prob = 0.0
    config.aug.grayscale_prob = 0.0
    config.aug.blur_prob = 0.0
    return Run("triplet", num_devices=DEVICES, config=config)


@pytest.fixture(scope="module")
def start(run):
    """The initial state, the first global batch (NumPy) and the first step's key."""
    sharding = NamedSharding(run.mesh, P("data"))
    _, batch = next(run.dataset.train_batches(run.config.batch_size, 0, 0, sharding))
    state = jax.device_get(run.state)
    return state, jax.device_get(batch), jax.device_get(jax.random.fold_in(state.rng, 0))


_LOSSES = {}


def objective_loss(run, **fields):
    """The jitted loss of the objective ``fields`` describe (default: the run's), with the batch
    sharded over the run's 8 devices; compiled once per objective."""
    cache_key = tuple(sorted(fields.items()))
    if cache_key in _LOSSES:
        return _LOSSES[cache_key]
    objective = run.objective
    if fields:
        config = run.config.copy_and_resolve_references()
        config.objective = ml_collections.ConfigDict({**tiny_fields(fields["name"]), **fields})
        objective = make_objective(config, decoded_spec(run.dataset.spec))

    @jax.jit
    def loss(state, batch, key):
        return objective.loss(
            state.params,
            state.batch_stats,
            state.objective_state,
            batch,
            key,
            state.step,
            group="model",
        )

    sharding = NamedSharding(run.mesh, P("data"))
    _LOSSES[cache_key] = lambda s, b, k: loss(s, jax.device_put(b, sharding), k)
    return _LOSSES[cache_key]


def distances(z, squared=False):
    e = np.asarray(z, np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    d2 = np.sum((e[:, None] - e[None]) ** 2, -1)
    return d2 if squared else np.sqrt(d2)


def ref_batch_hard(d, keys, margin):
    terms = []
    for a in range(len(keys)):
        positives = [d[a, p] for p in range(len(keys)) if p != a and keys[p] == keys[a]]
        negatives = [d[a, n] for n in range(len(keys)) if keys[n] != keys[a]]
        if positives and negatives:
            terms.append(max(0.0, max(positives) - min(negatives) + margin))
    return np.mean(terms)


def ref_semi_hard(d, keys, margin):
    terms = []
    for a in range(len(keys)):
        negatives = np.array([d[a, n] for n in range(len(keys)) if keys[n] != keys[a]])
        for p in range(len(keys)):
            if p == a or keys[p] != keys[a]:
                continue
            farther = negatives[negatives > d[a, p]]
            chosen = farther.min() if len(farther) else negatives.max()
            terms.append(max(0.0, d[a, p] - chosen + margin))
    return np.mean(terms)


def views_of(rows, batch_size):
    return np.concatenate([rows, rows + batch_size])


def test_triplet_mining_finds_a_hard_negative_on_another_devices_shard(run, start):
    state, batch, key = start
    batch_size, margin = len(batch["labels"]), run.config.objective.margin
    # A copy of the anchor's image on device 5's shard, under another label: the anchor's
    # hardest negative, at distance 0, where no device but the 5th holds it.
    batch = {name: np.array(value) for name, value in batch.items()}
    batch["images"][COPY] = batch["images"][ANCHOR]
    batch["labels"][COPY] = (batch["labels"][ANCHOR] + 1) % 10
    value_8, out = objective_loss(run)(state, batch, key)

    d = distances(out.outputs["projections"])
    keys = np.concatenate([batch["labels"], batch["labels"]])
    negatives = keys != keys[ANCHOR]
    hardest = np.flatnonzero(negatives)[np.argmin(d[ANCHOR, negatives])]
    assert hardest % batch_size == COPY and d[ANCHOR, hardest] < 1e-3
    np.testing.assert_allclose(value_8, ref_batch_hard(d, keys, margin), rtol=1e-5)

    # Mining within each shard misses it: the anchor's own shard sees a farther negative.
    per_device = batch_size // DEVICES
    shards = [
        views_of(np.arange(i, i + per_device), batch_size) for i in range(0, batch_size, per_device)
    ]
    own = shards[0]
    assert d[ANCHOR, own[keys[own] != keys[ANCHOR]]].min() > 0.1
    per_shard = np.mean([ref_batch_hard(d[np.ix_(v, v)], keys[v], margin) for v in shards])
    assert abs(per_shard - float(value_8)) > 0.01, (per_shard, value_8)


def test_triplet_views_positives_and_semi_hard_mining(run, start):
    state, batch, key = start
    batch_size = len(batch["labels"])
    value, out = objective_loss(
        run, name="triplet", positives="views", mining="semi_hard", squared=True
    )(state, batch, key)
    d = distances(out.outputs["projections"], squared=True)
    # The other view of the same image is the one positive; every other image is a negative,
    # whatever its label.
    image = np.concatenate([np.arange(batch_size), np.arange(batch_size)])
    margin = run.config.objective.margin
    np.testing.assert_allclose(value, ref_semi_hard(d, image, margin), rtol=1e-5)
    labels = np.concatenate([batch["labels"], batch["labels"]])
    assert abs(ref_semi_hard(d, labels, margin) - float(value)) > 0.01


def ref_pairs(labels, pairs):
    """Ordered pairs (i, j), i ≠ j, of the 2B views by the rule, built one by one."""
    batch_size = len(labels)
    positive, negative = [], []
    for i in range(2 * batch_size):
        for j in range(2 * batch_size):
            if i == j:
                continue
            same_image = i % batch_size == j % batch_size
            same = (
                same_image if pairs == "views" else labels[i % batch_size] == labels[j % batch_size]
            )
            (positive if same else negative).append((i, j))
    return positive, negative


def ref_margin_loss(z, positive, negative, margin):
    z = np.asarray(z, np.float64)

    def cost(pairs, same):
        d = np.array([np.linalg.norm(z[i] - z[j]) for i, j in pairs])
        return np.mean(0.5 * (d**2 if same else np.maximum(0.0, margin - d) ** 2))

    return (cost(positive, True) + cost(negative, False)) / 2


@pytest.mark.parametrize("pairs", ["labels", "views"])
def test_margin_contrastive_uses_the_pairs_of_its_rule(run, start, pairs):
    state, batch, key = start
    # Known labels: three classes in turn, so images of one class sit on every device.
    labels = np.arange(len(batch["labels"])) % 3
    batch = {**batch, "labels": labels.astype(batch["labels"].dtype)}
    _, out = objective_loss(run)(state, batch, key)
    z = np.asarray(out.outputs["projections"], np.float64)
    # A margin amid the distances, so that some negative pairs cost something and others not.
    margin = float(np.median(np.linalg.norm(z[:, None] - z[None], axis=-1)))
    value, out = objective_loss(run, name="margin_contrastive", pairs=pairs, margin=margin)(
        state, batch, key
    )
    np.testing.assert_allclose(out.outputs["projections"], z, rtol=1e-5, atol=1e-6)
    positive, negative = ref_pairs(labels, pairs)
    np.testing.assert_allclose(value, ref_margin_loss(z, positive, negative, margin), rtol=1e-5)
    other = ref_pairs(labels, "views" if pairs == "labels" else "labels")
    assert abs(ref_margin_loss(z, *other, margin) - float(value)) > 0.01


# Measured (trained / random init on 300 held-out digits), 100 steps:
#   triplet             seed 0 kNN 0.940 / 0.853, linear 0.950 / 0.853;
#                       seed 1 kNN 0.947 / 0.907, linear 0.927 / 0.900  (smallest kNN gap 0.040)
#   margin_contrastive  seed 0 kNN 0.967 / 0.853, linear 0.967 / 0.853;
#                       seed 1 kNN 0.943 / 0.907, linear 0.957 / 0.900  (smallest kNN gap 0.037)
@pytest.mark.parametrize("objective", ["triplet", "margin_contrastive"])
def test_metric_learning_learns_on_digits(objective, tmp_path):
    config = learning_config(
        objective, num_steps=100, projector=dict(hidden_dims=(256,), output_dim=64)
    )
    scores = pretrain(config, tmp_path)
    knn, linear = scores["knn"], scores["linear"]
    assert knn[0] > knn[1] + 0.02, scores
    assert linear[0] >= linear[1], scores
