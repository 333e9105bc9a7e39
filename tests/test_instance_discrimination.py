"""Instance discrimination with a memory bank: the rows of exactly this step's examples (the
whole global batch) move by v ← normalise(λv + (1 − λ)f), all others stay; NCE and the full
softmax match their formulas; a batch without indices is refused; the method learns on digits.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax.data.spec import decoded_spec
from ssl_jax.errors import UserError
from ssl_jax.objectives.instance_discrimination import (
    memory_bank_nce_loss,
    nonparametric_softmax_loss,
)
from ssl_jax.objectives.siamese import apply_chain, build_chain
from tests.learning import learning_config, pretrain
from tests.objective_steps import Run

DIGITS = 1497  # training examples of the digits dataset: one bank row each


@pytest.fixture(scope="module")
def run():
    return Run("instance_discrimination", num_devices=8, bank_size=DIGITS, num_negatives=64)


def test_bank_rows_of_this_steps_examples_move_by_the_rule_the_others_stay(run):
    before, after, batch, key, _ = run.steps(2)
    config = run.config
    chain = build_chain(
        config, decoded_spec(run.dataset.spec)["images"], projector=config.objective.projector
    )

    @jax.jit
    def features_of(params, batch_stats, images, key):
        view = augment.make_views(images, jax.random.split(key)[0], config.aug)[0]
        out, _ = apply_chain(chain, params, batch_stats, view, train=True)
        return out["projector"]

    f = np.asarray(features_of(before.params, before.batch_stats, batch["images"], key))
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    index = np.asarray(batch["index"])
    assert len(set(index.tolist())) == config.batch_size  # every device's examples
    lam = config.objective.bank_momentum
    old, new = np.asarray(before.objective_state.bank), np.asarray(after.objective_state.bank)
    want = lam * old[index] + (1 - lam) * f
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(new[index], want, rtol=1e-5, atol=1e-6)
    others = np.ones(DIGITS, bool)
    others[index] = False
    np.testing.assert_array_equal(new[others], old[others])
    # NCE's Z was estimated at the first step and is held since.
    assert float(before.objective_state.z) > 0
    assert float(after.objective_state.z) == float(before.objective_state.z)


def test_a_batch_without_indices_is_refused(run):
    _, _, batch, key, _ = run.steps()
    without = {k: v for k, v in batch.items() if k != "index"}
    with pytest.raises(UserError, match=r"batch\['index'\]"):
        run.loss(run.state, without, key)


def test_losses_match_the_formulas():
    rng = np.random.default_rng(0)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    f, bank = unit(rng.normal(size=(5, 8))), unit(rng.normal(size=(20, 8)))
    index, tau = np.array([3, 0, 7, 19, 11]), 0.07
    # Full softmax: −log exp(v_iᵀf/τ) / Σ_j exp(v_jᵀf/τ).
    s = f @ bank.T / tau
    want = np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(5), index])
    got = nonparametric_softmax_loss(jnp.asarray(f), jnp.asarray(bank), index, tau)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # NCE with m = 6 noise rows, P_n = 1/N, h = P/(P + m·P_n), P = exp(vᵀf/τ)/Z.
    positive, negative = np.sum(f * bank[index], 1), f @ bank[[1, 2, 5, 5, 9, 14]].T
    z, k = 40.0, 6 / 20
    p_pos, p_neg = np.exp(positive / tau) / z, np.exp(negative / tau) / z
    want = -np.mean(np.log(p_pos / (p_pos + k)) + np.log(k / (p_neg + k)).sum(1))
    got = memory_bank_nce_loss(jnp.asarray(positive), jnp.asarray(negative), tau, z, 20)
    np.testing.assert_allclose(got, want, rtol=1e-5)


# The full softmax: N = 1,497 is small, and NCE's one-off estimate of Z, made while the bank is
# still random, goes stale within these few epochs (its loss grows, kNN stays at random init).
# Batch 256: 17 passes in 100 steps, so the bank holds features rather than its random start.
# Measured (seeds 0, 1): kNN 0.937 / 0.947 vs 0.917 / 0.877 at random init, linear 0.950 /
# 0.953 vs 0.900 / 0.900: gaps of at least 0.020 (kNN) and 0.050 (linear).
def test_instance_discrimination_learns_on_digits(tmp_path):
    config = learning_config(
        "instance_discrimination",
        num_steps=100,
        batch_size=256,
        bank_size=DIGITS,
        loss="softmax",
        projector=dict(hidden_dims=(), output_dim=64),
    )
    scores = pretrain(config, tmp_path)
    knn, linear = scores["knn"], scores["linear"]
    assert knn[0] > knn[1] + 0.01, scores
    assert linear[0] > linear[1] + 0.03, scores
