"""Discrete latent codes (notes 004; `ssl_jax.quantize`): the VQ-VAE's nearest-code
quantisation with its straight-through gradient, where the codebook and commitment terms send
their gradients, the EMA codebook against the formula, dead-code restarts, perplexity; the
Gumbel-softmax's sample frequencies, its straight-through hard sample and the temperature
schedule; both objectives on 8 devices equal one, and both learn on digits."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy import stats

from ssl_jax.config import load_config
from ssl_jax.data.spec import decoded_spec, sample_batch
from ssl_jax.errors import UserError
from ssl_jax.objectives import make_objective
from ssl_jax.objectives.vq_vae import VQState, deepest_feature_map
from ssl_jax.quantize import (
    EMACodebook,
    annealed_temperature,
    categorical_kl_to_uniform,
    code_counts,
    code_sums,
    codebook_loss,
    codebook_perplexity,
    codebook_usage,
    commitment_loss,
    count_unused_steps,
    dead_codes,
    ema_codebook_update,
    gumbel_softmax,
    gumbel_softmax_sample,
    nearest_code,
    quantize,
    restart_candidates,
    restart_codes,
    restart_ema_codes,
)
from ssl_jax.train import train
from tests.configs import REPO, tiny_config
from tests.learning import learning_config
from tests.objective_steps import Run

RNG = np.random.default_rng(0)
VQ = dict(num_codes=32, code_dim=8, decoder_width=32)
GUMBEL = dict(num_variables=8, num_classes=8, decoder_hidden_dims=(128,))


def normal(*shape, scale=1.0):
    return jnp.asarray(RNG.normal(scale=scale, size=shape), jnp.float32)


# --- vector quantisation ------------------------------------------------------------------


def test_nearest_code_is_the_closest_codebook_vector():
    z, codebook = normal(3, 7, 4), normal(10, 4)
    distances = np.square(np.asarray(z)[..., None, :] - np.asarray(codebook)).sum(-1)
    np.testing.assert_array_equal(nearest_code(z, codebook), distances.argmin(-1))
    z_q, indices, e = quantize(z, codebook)
    np.testing.assert_array_equal(e, np.asarray(codebook)[distances.argmin(-1)])
    np.testing.assert_allclose(z_q, e, atol=1e-6)  # z + (e − z): e in the forward pass


def test_straight_through_gives_z_the_decoders_gradient_at_z_q():
    """∂L/∂z = ∂L/∂z_q evaluated at z_q = e: the decoder's gradient is copied onto z."""
    z, codebook, weights = normal(6, 4), normal(5, 4), normal(4, 3)
    decoder_loss = lambda v: jnp.sum(jnp.tanh(v @ weights) ** 2)  # nonlinear in its input
    through_quantiser = jax.grad(lambda z: decoder_loss(quantize(z, codebook)[0]))(z)
    z_q, _, e = quantize(z, codebook)
    # z_q = z + sg(e − z) is e up to the rounding of that sum, so the gradient is compared at
    # z_q itself (exactly the decoder's) and at e to within that rounding.
    np.testing.assert_array_equal(through_quantiser, jax.grad(decoder_loss)(z_q))
    np.testing.assert_allclose(through_quantiser, jax.grad(decoder_loss)(e), rtol=1e-5)
    assert not np.allclose(through_quantiser, jax.grad(decoder_loss)(z))  # taken at e, not z


def test_codebook_term_moves_only_the_codebook_and_commitment_only_the_encoder():
    z, codebook = normal(12, 3), normal(6, 3)
    _, indices, _ = quantize(z, codebook)

    def terms(z, codebook):
        _, _, e = quantize(z, codebook)
        return codebook_loss(z, e).sum(), commitment_loss(z, e).sum()

    (book_dz, book_de), (commit_dz, commit_de) = jax.jacrev(terms, argnums=(0, 1))(z, codebook)
    e = np.asarray(codebook)[np.asarray(indices)]
    want_de = np.zeros_like(np.asarray(codebook))  # Σ_{i: k_i = k} 2(e_k − z_i); 0 if unused
    np.add.at(want_de, np.asarray(indices), 2 * (e - np.asarray(z)))
    np.testing.assert_allclose(book_de, want_de, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(commit_dz, 2 * (np.asarray(z) - e), rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(book_dz).max()) == 0.0 and float(jnp.abs(commit_de).max()) == 0.0


def test_ema_update_follows_the_formula():
    """N ← γN + (1−γ)n, m ← γm + (1−γ)s, Ñ = (N + ε)/(ΣN + Kε)·ΣN, e = m/Ñ, in NumPy."""
    num_codes, dim, decay, epsilon = 6, 3, 0.9, 1e-2
    z = RNG.normal(size=(50, dim))
    indices = RNG.integers(0, num_codes - 1, size=50)  # the last code is unused
    state = EMACodebook(
        normal(num_codes, dim),
        jnp.asarray(RNG.uniform(0.5, 3, num_codes), jnp.float32),
        normal(num_codes, dim),
    )
    counts = np.bincount(indices, minlength=num_codes)
    sums = np.zeros((num_codes, dim))
    np.add.at(sums, indices, z)
    np.testing.assert_array_equal(code_counts(jnp.asarray(indices), num_codes), counts)
    z32, idx = jnp.asarray(z, jnp.float32), jnp.asarray(indices)
    np.testing.assert_allclose(code_sums(z32, idx, num_codes), sums, rtol=1e-5, atol=1e-5)

    size = decay * np.asarray(state.cluster_size) + (1 - decay) * counts
    total_sum = decay * np.asarray(state.cluster_sum) + (1 - decay) * sums
    smoothed = (size + epsilon) / (size.sum() + num_codes * epsilon) * size.sum()
    new = ema_codebook_update(
        state, code_counts(idx, num_codes), code_sums(z32, idx, num_codes), decay, epsilon
    )
    np.testing.assert_allclose(new.cluster_size, size, rtol=1e-6)
    np.testing.assert_allclose(new.cluster_sum, total_sum, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.codebook, total_sum / smoothed[:, None], rtol=1e-5, atol=1e-6)
    # Without memory (γ = 0) each used code is the mean of its vectors.
    fresh = ema_codebook_update(
        state, code_counts(idx, num_codes), code_sums(z32, idx, num_codes), 0.0, 1e-7
    )
    for k in range(num_codes - 1):
        np.testing.assert_allclose(fresh.codebook[k], z[indices == k].mean(0), rtol=1e-4)


def test_dead_codes_restart_at_vectors_of_the_batch():
    z = normal(4, 5, 3)  # 20 encoder outputs
    candidates = restart_candidates(jax.random.key(0), z, 8)
    rows = {tuple(np.round(r, 6)) for r in np.asarray(z).reshape(-1, 3)}
    assert {tuple(np.round(c, 6)) for c in np.asarray(candidates)} <= rows
    assert len({tuple(np.round(c, 6)) for c in np.asarray(candidates)}) == 8  # distinct rows

    counts = jnp.array([3, 0, 0, 1, 0, 0, 2, 0], jnp.float32)
    unused = count_unused_steps(jnp.array([7, 9, 2, 0, 0, 8, 1, 1], jnp.int32), counts)
    np.testing.assert_array_equal(unused, [0, 10, 3, 0, 1, 9, 0, 2])
    dead = dead_codes(unused, 3)
    np.testing.assert_array_equal(dead, [0, 1, 1, 0, 0, 1, 0, 0])
    codebook = normal(8, 3)
    moved = restart_codes(codebook, dead, candidates)
    np.testing.assert_array_equal(moved[dead], candidates[dead])
    np.testing.assert_array_equal(moved[~dead], codebook[~dead])
    # The EMA averages restart as one vector's worth at the new place: the next update with
    # the code unused keeps it there.
    ema = restart_ema_codes(
        EMACodebook(codebook, jnp.full(8, 1e-6), codebook * 1e-6), dead, candidates
    )
    after = ema_codebook_update(ema, jnp.zeros(8), jnp.zeros((8, 3)), 0.99, 1e-5)
    np.testing.assert_allclose(after.codebook[dead], candidates[dead], rtol=1e-3)


def test_gradient_mode_restart_shifts_the_parameter_codebook_onto_the_candidates(digits):
    config = tiny_config("vq_vae", restart_dead_codes=True, restart_after_steps=2, num_codes=4)
    objective = make_objective(config, decoded_spec(digits.spec))
    parameter, shift = normal(4, 16), normal(4, 16, scale=0.1)
    state = VQState(EMACodebook(parameter, jnp.ones(4), parameter), shift, jnp.array([5, 1, 0, 1]))
    outputs = {"code_counts": jnp.array([0.0, 0.0, 4.0, 1.0]), "restart_candidates": normal(4, 16)}
    new = objective.update_state(state, {"codebook": {"embedding": parameter}}, outputs, 0)
    effective = parameter + new.restart_shift
    np.testing.assert_allclose(effective[:2], outputs["restart_candidates"][:2], atol=1e-6)
    np.testing.assert_array_equal(new.restart_shift[2:], shift[2:])
    np.testing.assert_array_equal(new.unused_steps, [0, 0, 0, 0])


def test_perplexity_and_usage_of_known_assignments():
    even = code_counts(jnp.array([0, 0, 1, 1, 2, 2, 3, 3]), 8)
    np.testing.assert_allclose(codebook_perplexity(even), 4.0, rtol=1e-6)
    np.testing.assert_allclose(codebook_usage(even), 0.5)
    skewed = code_counts(jnp.array([5, 5, 1, 2]), 8)  # p = (1/2, 1/4, 1/4): 2^1.5
    np.testing.assert_allclose(codebook_perplexity(skewed), 2**1.5, rtol=1e-6)
    np.testing.assert_allclose(codebook_perplexity(code_counts(jnp.zeros(9, int), 8)), 1.0)


def test_the_encoders_deepest_map_is_quantised_and_flat_encoders_are_refused():
    layers = {"stage1": jnp.zeros((2, 4, 4, 8)), "stage2": jnp.zeros((2, 2, 2, 16))}
    assert deepest_feature_map({**layers, "features": jnp.zeros((2, 16))}, "x").shape[1] == 2
    with pytest.raises(UserError, match="convolutional encoder"):
        deepest_feature_map({"hidden1": jnp.zeros((2, 32))}, "mlp")


# --- Gumbel-softmax -----------------------------------------------------------------------


def test_hard_gumbel_samples_follow_the_softmax_probabilities():
    """Gumbel-max: argmax(ℓ + g) ~ Categorical(softmax ℓ), whatever τ; 40,000 draws."""
    logits = jnp.array([1.0, 0.0, -1.0, 0.5, -2.0])
    draws = 40_000
    batch = jnp.broadcast_to(logits, (draws, 5))
    hard = gumbel_softmax_sample(jax.random.key(3), batch, 0.3, hard=True)
    assert set(np.unique(np.asarray(hard))) == {0.0, 1.0}
    np.testing.assert_array_equal(hard.sum(-1), 1.0)
    observed = np.asarray(hard.sum(0))
    expected = draws * np.asarray(jax.nn.softmax(logits), np.float64)
    assert stats.chisquare(observed, expected).pvalue > 1e-3, (observed, expected)
    soft = gumbel_softmax(jax.random.key(3), batch, 0.3)  # the same noise, relaxed
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(soft.argmax(-1), hard.argmax(-1))


def test_straight_through_sample_is_one_hot_with_the_soft_samples_gradient():
    logits, key, temperature = normal(4, 6), jax.random.key(1), 0.7
    hard = lambda ell: gumbel_softmax_sample(key, ell, temperature, hard=True)
    soft = lambda ell: gumbel_softmax_sample(key, ell, temperature, hard=False)
    y = hard(logits)
    np.testing.assert_array_equal(y, jax.nn.one_hot(soft(logits).argmax(-1), 6))
    weights = normal(4, 6)
    linear = lambda sample: lambda ell: jnp.sum(weights * sample(ell))
    np.testing.assert_allclose(
        jax.grad(linear(hard))(logits), jax.grad(linear(soft))(logits), rtol=1e-5, atol=1e-7
    )
    # Any f: the soft sample's Jacobian applied to ∇f at the one-hot value.
    f = lambda v: jnp.sum(jnp.sin(3 * v) * weights)
    _, soft_vjp = jax.vjp(soft, logits)
    np.testing.assert_allclose(
        jax.grad(lambda ell: f(hard(ell)))(logits),
        soft_vjp(jax.grad(f)(y))[0],
        rtol=1e-5,
        atol=1e-7,
    )


def test_temperature_decays_exponentially_to_its_floor():
    steps = jnp.array([0, 100, 500, 700, 1000, 10_000])  # e^−0.7 < 0.5
    values = annealed_temperature(steps, 1.0, 1e-3, 0.5)
    np.testing.assert_allclose(values, [1.0, np.exp(-0.1), np.exp(-0.5), 0.5, 0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(annealed_temperature(200, 2.0, 1e-2, 0.1), 2 * np.exp(-2))


def test_categorical_kl_to_uniform_is_log_k_minus_the_entropy():
    logits = normal(3, 4, 5)
    q = np.asarray(jax.nn.softmax(logits))
    want = (np.log(5) + (q * np.log(q)).sum(-1)).sum(-1)
    np.testing.assert_allclose(categorical_kl_to_uniform(logits), want, rtol=1e-5)
    np.testing.assert_allclose(categorical_kl_to_uniform(jnp.zeros((1, 4, 5))), 0.0, atol=1e-6)


# --- 8 devices equal one ------------------------------------------------------------------


def one_device_loss_and_state(run, state, batch, key, params_after):
    """The loss and the objective's state update at ``state``, on device 0 alone."""

    def loss_and_state(state, batch, key, params_after):
        value, out = run.loss(state, batch, key)
        new = run.objective.update_state(
            state.objective_state, params_after, out.outputs, state.step
        )
        return value, out.outputs, new

    on_one = jax.device_put((state, batch, key, params_after), jax.devices()[0])
    return jax.device_get(jax.jit(loss_and_state)(*on_one))


def test_vq_vae_step_on_eight_devices_equals_one_device():
    """EMA codebook and restarts (codes unused for 1 step): the counts, sums and candidate
    vectors come from the global batch of 32, whatever the device count."""
    run = Run(
        "vq_vae",
        num_devices=8,
        ema=True,
        restart_dead_codes=True,
        restart_after_steps=1,
        num_codes=64,  # more codes than the step's 128 vectors fill: some are restarted
        decoder_width=16,
    )
    before, after, batch, key, metrics = run.steps(1)
    value, outputs, state = one_device_loss_and_state(run, before, batch, key, after.params)
    np.testing.assert_allclose(value, metrics["loss"], rtol=1e-5)
    assert outputs["code_counts"].sum() == 32 * 2 * 2  # every image's 2×2 grid
    jax.tree.map(
        lambda one, eight: np.testing.assert_allclose(one, eight, rtol=1e-5, atol=1e-5),
        state,
        after.objective_state,
    )
    dead = outputs["code_counts"] == 0
    assert 0 < dead.sum() < 64, outputs["code_counts"]
    np.testing.assert_allclose(
        after.objective_state.ema.codebook[dead],
        outputs["restart_candidates"][dead],
        rtol=1e-5,
        atol=1e-5,
    )


def test_gumbel_vae_loss_on_eight_devices_equals_one_device():
    run = Run("gumbel_vae", num_devices=8, **GUMBEL)
    before, after, batch, key, metrics = run.steps(1)
    value, _, _ = one_device_loss_and_state(run, before, batch, key, after.params)
    np.testing.assert_allclose(value, metrics["loss"], rtol=1e-5)
    np.testing.assert_allclose(metrics["elbo"], -metrics["loss"], rtol=1e-6)  # w_0 = 1


# --- learning on digits -------------------------------------------------------------------


def logged(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if '"loss"' in line]


def picture_sizes(workdir, step):
    return {
        name: Image.open(os.path.join(workdir, "pictures", f"{name}_{step}.png")).size
        for name in ("reconstructions", "samples")
    }


# Measured at seeds 0 and 1 (500 steps, batch 128, EMA codebook with restarts after 10 unused
# steps): linear 0.957 / 0.940 vs 0.853 / 0.900 at random init (gaps 0.104, 0.040); kNN 0.940 /
# 0.887 vs 0.853 / 0.907 (beaten at seed 0 only). 29.4 / 29.1 of the 32 codes in use.
def test_vq_vae_learns_on_digits_and_uses_its_codebook(tmp_path):
    config = learning_config(
        "vq_vae", num_steps=500, ema=True, restart_dead_codes=True, restart_after_steps=10, **VQ
    )
    scores = train(config, str(tmp_path))["representations"]["encoder"]["labels"]
    assert scores["linear"]["trained"] > scores["linear"]["random_init"] + 0.03, scores
    last = logged(tmp_path)[-1]
    assert last["perplexity"] > 24 and last["codebook_usage"] > 0.9, last
    # 16 held-out digits over their reconstructions, 2×8 samples; 8×8 digits scaled 7×.
    assert picture_sizes(tmp_path, 500) == {"reconstructions": (913, 115), "samples": (457, 115)}


# Measured at seeds 0 and 1 (500 steps, the KL at full weight throughout): q(y|x)'s kNN 0.847 /
# 0.857 vs 0.823 / 0.820 at random init (gaps 0.024, 0.037), linear 0.913 / 0.913 vs 0.860 /
# 0.897 (gaps 0.053, 0.016); KL 0.65 / 0.80 nats. At 150 steps q(y|x) was still at the prior
# (KL 0.03 nats).
def test_gumbel_vae_learns_on_digits(tmp_path):
    config = learning_config("gumbel_vae", num_steps=500, **GUMBEL)
    scores = train(config, str(tmp_path))["representations"]["probabilities"]["labels"]
    assert scores["knn"]["trained"] > scores["knn"]["random_init"] + 0.01, scores
    assert scores["linear"]["trained"] > scores["linear"]["random_init"] + 0.01, scores
    last = logged(tmp_path)[-1]
    np.testing.assert_allclose(last["temperature"], max(0.5, np.exp(-1e-3 * 499)), rtol=1e-5)
    assert last["kl"] > 0.3, last  # q(y|x) has moved off the prior
    assert picture_sizes(tmp_path, 500) == {"reconstructions": (913, 115), "samples": (457, 115)}


@pytest.mark.parametrize(
    "name", ["vq_vae_mnist", "vq_vae_mnist_tfds", "gumbel_vae_mnist", "gumbel_vae_mnist_tfds"]
)
def test_the_discrete_code_configs_build_their_objective_on_mnist(name, mnist):
    config = load_config(os.path.join(REPO, "experiments", f"{name}.py"))
    spec = decoded_spec(mnist.spec)
    params, _, _ = jax.eval_shape(
        make_objective(config, spec).init, jax.random.key(0), sample_batch(spec)
    )
    assert {"encoder", "decoder"} <= set(params)
