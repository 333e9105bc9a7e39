"""CPC: the audio encoder and context networks, the InfoNCE loss, and learning on speech."""

import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ssl_jax.config import base_config
from ssl_jax.data.spec import ArraySpec, decoded_spec, sample_batch
from ssl_jax.errors import UserError
from ssl_jax.models import ENCODERS, build_encoder
from ssl_jax.models.audio import CausalTransformerContext, GRUContext, WaveformEncoder
from ssl_jax.objectives import cpc
from ssl_jax.objectives.base import NoState

AUDIO = ArraySpec((16000,), "float32", "audio", sample_rate=16000)


def cpc_config(context="gru", widths=(16, 16, 32, 32, 32), context_dim=32, steps=4, times=8):
    c = base_config()
    c.dataset = "speech"
    c.model = ml_collections.ConfigDict(dict(name="conv1d_audio", widths=widths))
    c.objective = ml_collections.ConfigDict(
        dict(
            name="cpc",
            context=context,
            context_dim=context_dim,
            prediction_steps=steps,
            num_times=times,
            transformer_depth=1,
            transformer_heads=2,
        )
    )
    return c


# --- models ----------------------------------------------------------------------------


def test_waveform_encoder_downsamples_160x_into_frames():
    assert ENCODERS["conv1d_audio"][0] is WaveformEncoder
    encoder = build_encoder(ml_collections.ConfigDict(dict(name="conv1d_audio")), AUDIO)
    x = jax.ShapeDtypeStruct((2, 16000), jnp.float32)  # traced abstractly: shapes only
    variables = jax.eval_shape(encoder.init, jax.random.PRNGKey(0), x)
    z, layers = jax.eval_shape(lambda v, x: encoder.apply(v, x, return_layers=True), variables, x)
    chex.assert_shape(z, (2, 100, 64))
    assert list(layers) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    chex.assert_shape(layers["conv1"], (2, 3200, 64))
    chex.assert_shape(layers["conv2"], (2, 800, 64))


def test_waveform_encoder_rejects_images_and_short_audio():
    config = ml_collections.ConfigDict(dict(name="conv1d_audio"))
    with pytest.raises(UserError, match=r"shape \(T,\)"):
        build_encoder(config, (28, 28, 1))
    with pytest.raises(UserError, match="160"):
        build_encoder(config, (100,))
    with pytest.raises(UserError, match="as many widths"):
        build_encoder(ml_collections.ConfigDict(dict(name="conv1d_audio", widths=(8,))), AUDIO)


@pytest.mark.parametrize(
    "context",
    [GRUContext(features=8), CausalTransformerContext(features=8, depth=2, num_heads=2)],
    ids=["gru", "transformer"],
)
def test_context_is_causal(context):
    """Changing z after time t leaves c_≤t unchanged (and does change c after t)."""
    z = jax.random.normal(jax.random.PRNGKey(0), (2, 12, 6))
    params = context.init(jax.random.PRNGKey(1), z)
    c = context.apply(params, z)
    chex.assert_shape(c, (2, 12, 8))
    t = 5
    changed = z.at[:, t + 1 :].add(jax.random.normal(jax.random.PRNGKey(2), (2, 6, 6)))
    c_changed = context.apply(params, changed)
    np.testing.assert_array_equal(c[:, : t + 1], c_changed[:, : t + 1])
    assert np.abs(np.asarray(c[:, t + 1 :] - c_changed[:, t + 1 :])).max() > 1e-3


# --- the loss --------------------------------------------------------------------------


def reference_infonce(z, c, w, times):
    """L = (1/K) Σ_k mean over anchors (b, t) of −log f_k(z_{b,t+k}, c_{b,t}) / Σ_{(b',t')}
    f_k(z_{b',t'+k}, c_{b,t}), f_k(z, c) = exp(zᵀ W_k c), candidates over b' and t' ∈ times."""
    batch = z.shape[0]
    losses = []
    for k in range(1, w.shape[0] + 1):
        terms = []
        for b in range(batch):
            for t in times:

                def f(b2, t2, b=b, t=t, k=k):
                    return math.exp(float(z[b2, t2 + k] @ w[k - 1] @ c[b, t]))

                total = sum(f(b2, t2) for b2 in range(batch) for t2 in times)
                terms.append(-math.log(f(b, t) / total))
        losses.append(np.mean(terms))
    return float(np.mean(losses))


def test_cpc_infonce_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 7, 4))  # [B, T', D]
    c = rng.standard_normal((3, 7, 5))  # [B, T', C]
    w = 0.5 * rng.standard_normal((2, 4, 5))  # W_k: [K, D, C], z ᵀ W_k c
    times = np.array([0, 2, 4])  # ≤ T' − 1 − K
    predictions = np.einsum("kdc,bsc->kbsd", w, c[:, times])
    loss, parts = cpc.cpc_infonce_loss(
        jnp.asarray(z, jnp.float32), jnp.asarray(predictions, jnp.float32), jnp.asarray(times)
    )
    np.testing.assert_allclose(float(loss), reference_infonce(z, c, w, times), rtol=1e-5)
    chex.assert_shape(parts["accuracy_k"], (2,))


def test_cpc_infonce_bound_approaches_log_m_for_perfect_predictions():
    z = 10.0 * jnp.eye(6)[None].repeat(2, 0)  # [2, 6, 6]: every frame its own direction
    z = z.at[1].multiply(-1.0)
    times = jnp.arange(4)
    k = 1  # predict exactly the next frame
    predictions = z[:, times + k][None]  # [1, B, S, D]
    loss, parts = cpc.cpc_infonce_loss(z, predictions, times)
    assert float(loss) < 1e-3 and float(parts["accuracy_k"][0]) == 1.0


def test_cpc_objective_init_loss_and_representations():
    config = cpc_config(context="transformer")
    short = ArraySpec((3200,), "float32", "audio", sample_rate=16000)  # 20 frames
    objective = cpc.make(config, {"audio": short})
    batch = sample_batch({"audio": short}, size=4)
    params, batch_stats, state = jax.jit(objective.init)(jax.random.PRNGKey(0), batch)
    assert state == NoState() and set(params) == {"encoder", "context", "predictor"}
    audio = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (4, 3200))
    loss_fn = jax.jit(
        lambda p, key: objective.loss(
            p, batch_stats, state, {"audio": audio}, key, 0, group="model"
        )
    )
    (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, jax.random.PRNGKey(2))
    metrics = out.metrics
    num_candidates = 4 * config.objective.num_times
    assert np.isfinite(float(loss)) and float(loss) > 0
    np.testing.assert_allclose(metrics["mi_bound"], math.log(num_candidates) - loss, rtol=1e-6)
    assert float(metrics["mi_bound"]) <= math.log(num_candidates)
    assert {f"accuracy_k{k}" for k in range(1, 5)} <= set(metrics)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    assert any(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(grads["encoder"]))
    for name, rep in objective.representations.items():
        assert rep.input == "audio"
        features = jax.jit(rep.fn)(params, batch_stats, audio)
        chex.assert_shape(features, (4, 32))
        layers = jax.jit(rep.layers)(params, batch_stats, audio)
        assert "conv5" in layers and ("context" in layers) == (name == "context")


def test_cpc_needs_audio_and_a_valid_horizon():
    with pytest.raises(UserError, match="audio"):
        cpc.make(cpc_config(), {"images": ArraySpec((8, 8, 1), "float32", "images")})
    with pytest.raises(UserError, match="prediction_steps"):
        cpc.make(cpc_config(steps=100), {"audio": AUDIO})
    with pytest.raises(UserError, match="context"):
        cpc.make(cpc_config(context="lstm"), {"audio": AUDIO})


# --- learning on speech ----------------------------------------------------------------


def train_cpc(dataset, config, num_steps, batch_size, seed, crop=8000):
    """A plain optax loop on ``objective.loss``; returns (objective, batch_stats, trained and
    initial params). It trains on the central ``crop`` samples of each utterance, where the
    word is (half the compute of the whole second); the readout sees the whole second."""
    spec = decoded_spec(dataset.spec)
    objective = cpc.make(config, spec)
    key = jax.random.PRNGKey(seed)
    params, batch_stats, state = jax.jit(objective.init)(key, sample_batch(spec))
    initial = params
    optimizer = optax.adam(optax.warmup_cosine_decay_schedule(0.0, 3e-3, 10, num_steps))
    opt_state = optimizer.init(params)

    @jax.jit
    def update(params, opt_state, audio, key, step):
        def loss_fn(p):
            return objective.loss(p, batch_stats, state, {"audio": audio}, key, step, group="m")

        grads = jax.grad(lambda p: loss_fn(p)[0])(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    audio = dataset.decoded("train", "audio")
    middle = audio.shape[1] // 2
    audio = audio[:, middle - crop // 2 : middle + crop // 2]
    rng = np.random.default_rng(seed)
    for step in range(num_steps):
        index = rng.choice(len(audio), batch_size, replace=False)
        params, opt_state = update(
            params, opt_state, audio[index], jax.random.fold_in(key, step), jnp.int32(step)
        )
    return objective, batch_stats, params, initial


def readout_accuracies(dataset, objective, batch_stats, params, representation, linear=True):
    from ssl_jax.evaluation import knn_classify, linear_probe

    fn = jax.jit(lambda p, x: objective.representations[representation].fn(p, batch_stats, x))
    train = np.asarray(fn(params, dataset.decoded("train", "audio")))
    test = np.asarray(fn(params, dataset.decoded("test", "audio")))
    result = {}
    for label in ("word", "speaker"):
        y_train, y_test = dataset.train[label], dataset.test[label]
        result[label, "knn"] = knn_classify(train, y_train, test, y_test)["test_top1"]
        if linear:
            result[label, "linear"] = linear_probe(
                train, y_train, test, y_test, l2_grid=(0.1, 0.01), refine=False
            )["test_top1"]
    return result


@pytest.fixture(scope="module")
def speech_data():
    from ssl_jax.data.speech import load_speech

    return load_speech()


def test_cpc_on_speech_beats_random_init_on_word_and_speaker(speech_data):
    """80 steps of 16 utterances (a tiny encoder, GRU context, K = 4) already make the pooled
    context a better readout than the same network at initialisation. Measured margins
    (trained − random init, seeds 0, 1, 2) on an AMD EPYC CPU: word kNN +0.175/+0.255/+0.21,
    word linear +0.10/+0.255/+0.125, speaker kNN +0.04/+0.095/+0.08, speaker linear
    +0.045/+0.105/+0.065; on an Intel Xeon (float32 rounds differently): word kNN
    +0.155/+0.27/+0.215, word linear +0.13/+0.39/+0.125, speaker kNN +0.04/+0.11/+0.13,
    speaker linear +0.02/+0.115/+0.12. Speaker identity is the weaker signal on 200 held-out
    utterances (one utterance is 0.005), so it is judged by the mean of its two protocols
    (smallest +0.03); the test asks for about half the smallest margin of each."""
    objective, batch_stats, trained, initial = train_cpc(
        speech_data, cpc_config(), num_steps=80, batch_size=16, seed=0
    )
    after = readout_accuracies(speech_data, objective, batch_stats, trained, "context")
    before = readout_accuracies(speech_data, objective, batch_stats, initial, "context")
    gain = {key: after[key] - before[key] for key in after}
    assert gain["word", "knn"] > 0.08, (after, before)
    assert gain["word", "linear"] > 0.05, (after, before)
    assert (gain["speaker", "knn"] + gain["speaker", "linear"]) / 2 > 0.015, (after, before)
