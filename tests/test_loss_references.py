"""Loss math against NumPy references written from the formulas, not from ssl_jax's code.

Each reference below follows the formula in the loss's docstring (and its paper) with plain
float64 NumPy loops or closed forms; nothing is imported from ssl_jax to build it. The JAX
losses run in float32 and must agree to 1e-5 relative. Gradients are checked against central
finite differences of the float64 references, and by a step along the negative gradient.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.objectives.autoencoder import reconstruction_loss
from ssl_jax.objectives.simclr import nt_xent_loss
from ssl_jax.objectives.supervised import smoothed_cross_entropy
from ssl_jax.objectives.targets import cosine_momentum, ema_update, fifo_enqueue

FLOAT32_RTOL = 1e-5

# Compiled once per shape (eager dispatch compiles every primitive separately, which is slower);
# test_jit_and_eager_agree checks that the eager calls give the same values.
nt_xent_jit = jax.jit(nt_xent_loss)
reconstruction_jit = jax.jit(reconstruction_loss, static_argnames="kind")
cross_entropy_jit = jax.jit(smoothed_cross_entropy, static_argnames="num_classes")


# --- References ---------------------------------------------------------------------------------


def ref_nt_xent(z1, z2, temperature):
    """SimCLR's NT-Xent, view by view: ℓ_i = −s_{i,p(i)} + log Σ_{j≠i} exp(s_ij); mean over 2B."""
    views = np.concatenate([z1, z2]).astype(np.float64)
    unit = views / np.linalg.norm(views, axis=1, keepdims=True)
    num_views, batch = len(unit), len(z1)
    losses, hits = [], []
    for i in range(num_views):
        positive = (i + batch) % num_views  # the other view of the same image
        others = [j for j in range(num_views) if j != i]
        s = np.array([unit[i] @ unit[j] / temperature for j in others])
        s_positive = unit[i] @ unit[positive] / temperature
        top = s.max()
        losses.append(top + np.log(np.sum(np.exp(s - top))) - s_positive)
        hits.append(others[int(np.argmax(s))] == positive)
    return np.mean(losses), np.mean(hits)


def ref_sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-logits))


def ref_reconstruction(logits, images, kind):
    logits, images = logits.astype(np.float64), images.astype(np.float64)
    if kind == "mse":
        per_pixel = (images - ref_sigmoid(logits)) ** 2
    else:
        # log σ(ℓ) = −log(1 + e^{−ℓ}), log(1 − σ(ℓ)) = −log(1 + e^{ℓ}), written stably.
        log_p, log_not_p = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
        per_pixel = -(images * log_p + (1.0 - images) * log_not_p)
    return np.mean([np.sum(per_pixel[b]) for b in range(len(logits))])


def ref_smoothed_cross_entropy(logits, labels, num_classes, smoothing):
    total = 0.0
    for row, label in zip(logits.astype(np.float64), labels, strict=True):
        log_softmax = row - row.max() - np.log(np.sum(np.exp(row - row.max())))
        target = np.full(num_classes, smoothing / num_classes)
        target[label] += 1.0 - smoothing
        total += -np.sum(target * log_softmax)
    return total / len(labels)


def ref_cosine_momentum(step, total_steps, base_momentum):
    if step >= total_steps:
        return 1.0
    return 1.0 - (1.0 - base_momentum) * (np.cos(np.pi * step / total_steps) + 1.0) / 2.0


# --- Cases ----------------------------------------------------------------------------------------


def view_pair(seed, batch, dim, noise=0.6):
    """Two views: the second is the first plus noise, so the positives are often but not always
    the most similar (accuracy strictly between 0 and 1 for these cases)."""
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=(batch, dim))
    z2 = z1 + noise * rng.normal(size=(batch, dim))
    return z1.astype(np.float32), z2.astype(np.float32)


NT_XENT_CASES = [
    # (seed, batch, dim, temperature): three shapes, five temperatures
    (0, 8, 16, 0.1),
    (1, 8, 16, 0.5),
    (2, 8, 16, 1.0),
    (3, 16, 8, 0.05),
    (4, 16, 8, 0.2),
    (5, 5, 32, 1.0),
]


def image_case(seed, shape=(4, 6, 5, 2), logit_scale=3.0):
    rng = np.random.default_rng(seed)
    logits = (logit_scale * rng.normal(size=shape)).astype(np.float32)
    images = rng.uniform(size=shape).astype(np.float32)
    images[0] = (images[0] > 0.5).astype(np.float32)  # binary pixels too
    return logits, images


def classification_case(seed, batch=9, num_classes=7):
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.normal(size=(batch, num_classes))).astype(np.float32)
    labels = rng.integers(0, num_classes, size=batch)
    return logits, labels


# --- Values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "batch", "dim", "temperature"), NT_XENT_CASES)
def test_nt_xent_loss_and_accuracy_match_the_reference(seed, batch, dim, temperature):
    z1, z2 = view_pair(seed, batch, dim)
    loss, accuracy = nt_xent_jit(z1, z2, temperature)
    expected_loss, expected_accuracy = ref_nt_xent(z1, z2, temperature)
    assert loss.dtype == jnp.float32
    np.testing.assert_allclose(float(loss), expected_loss, rtol=FLOAT32_RTOL)
    assert float(accuracy) == pytest.approx(expected_accuracy, abs=1e-7)


def test_nt_xent_cases_exercise_misses_and_hits():
    # Guards the test above: an accuracy of always 0 or always 1 would not test the argmax.
    accuracies = [ref_nt_xent(*view_pair(s, b, d), t)[1] for s, b, d, t in NT_XENT_CASES]
    assert any(0.0 < a < 1.0 for a in accuracies)


def test_nt_xent_does_not_depend_on_the_norm_of_the_projections():
    z1, z2 = view_pair(5, 8, 16)
    scale = np.random.default_rng(5).uniform(0.1, 10.0, size=(8, 1)).astype(np.float32)
    base, _ = nt_xent_jit(z1, z2, 0.1)
    scaled, _ = nt_xent_jit(scale * z1, z2, 0.1)
    np.testing.assert_allclose(float(scaled), float(base), rtol=FLOAT32_RTOL)


@pytest.mark.parametrize("kind", ["mse", "bernoulli"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reconstruction_loss_matches_the_reference(kind, seed):
    logits, images = image_case(seed)
    value = reconstruction_jit(logits, images, kind=kind)
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(
        float(value), ref_reconstruction(logits, images, kind), rtol=FLOAT32_RTOL
    )


def test_bernoulli_reconstruction_loss_is_finite_for_saturated_logits():
    # ±40 saturates σ in float32; the loss must use log σ, not log of a rounded σ.
    logits, images = image_case(3, logit_scale=40.0)
    value = float(reconstruction_jit(logits, images, kind="bernoulli"))
    np.testing.assert_allclose(value, ref_reconstruction(logits, images, "bernoulli"), rtol=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("seed", [0, 1])
def test_smoothed_cross_entropy_matches_the_reference(seed, smoothing):
    logits, labels = classification_case(seed)
    value = cross_entropy_jit(logits, labels, num_classes=7, smoothing=smoothing)
    expected = ref_smoothed_cross_entropy(logits, labels, 7, smoothing)
    np.testing.assert_allclose(float(value), expected, rtol=FLOAT32_RTOL)


def test_cross_entropy_without_smoothing_is_minus_log_probability_of_the_label():
    logits, labels = classification_case(4)
    z = logits.astype(np.float64)
    probabilities = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(probabilities[np.arange(len(labels)), labels]))
    value = float(cross_entropy_jit(logits, labels, num_classes=7, smoothing=0.0))
    np.testing.assert_allclose(value, expected, rtol=FLOAT32_RTOL)


@pytest.mark.parametrize(("total_steps", "base_momentum"), [(100, 0.99), (7, 0.9), (1000, 0.996)])
def test_cosine_momentum_matches_the_schedule(total_steps, base_momentum):
    steps = sorted({0, 1, total_steps // 3, total_steps // 2, total_steps - 1, total_steps})
    for step in [*steps, total_steps + 5]:
        got = float(cosine_momentum(step, total_steps, base_momentum))
        expected = ref_cosine_momentum(step, total_steps, base_momentum)
        assert got == pytest.approx(expected, abs=1e-6), step
    assert float(cosine_momentum(0, total_steps, base_momentum)) == pytest.approx(base_momentum)


def test_ema_update_is_the_convex_combination_leaf_by_leaf():
    rng = np.random.default_rng(0)
    target = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
    online = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
    for momentum in (0.0, 0.9, 0.996, 1.0):
        got = ema_update(
            jax.tree.map(jnp.float32, target), jax.tree.map(jnp.float32, online), momentum
        )
        for name in ("w", "b"):
            expected = momentum * target[name] + (1.0 - momentum) * online[name]
            np.testing.assert_allclose(got[name], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 3, 6])
def test_fifo_enqueue_puts_the_newest_first_and_drops_the_oldest(batch):
    queue = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)  # row r holds (2r, 2r + 1)
    items = -np.arange(1, batch * 2 + 1).reshape(batch, 2)  # ints: cast to the queue's dtype
    got = fifo_enqueue(jnp.asarray(queue), jnp.asarray(items))
    expected = [list(row) for row in items] + [list(row) for row in queue]
    assert got.dtype == jnp.float32
    np.testing.assert_array_equal(got, np.array(expected[:6], dtype=np.float32))


# --- Gradients ------------------------------------------------------------------------------------


def _directional_derivative(reference, point, direction, h=1e-4):
    """Central finite difference of a float64 reference along `direction`."""
    return (reference(point + h * direction) - reference(point - h * direction)) / (2 * h)


def _loss_functions():
    """(name, JAX loss of one float32 array, float64 reference of the same array, point)."""
    z1, z2 = view_pair(7, 6, 8)
    logits, images = image_case(8)
    cls_logits, labels = classification_case(9)
    joined = np.concatenate([z1, z2])
    return {
        "nt_xent": (
            lambda z: nt_xent_loss(z[:6], z[6:], 0.2)[0],
            lambda z: ref_nt_xent(z[:6], z[6:], 0.2)[0],
            joined,
        ),
        "mse": (
            lambda x: reconstruction_loss(x, images, "mse"),
            lambda x: ref_reconstruction(x, images, "mse"),
            logits,
        ),
        "bernoulli": (
            lambda x: reconstruction_loss(x, images, "bernoulli"),
            lambda x: ref_reconstruction(x, images, "bernoulli"),
            logits,
        ),
        "smoothed_cross_entropy": (
            lambda x: smoothed_cross_entropy(x, labels, 7, 0.1),
            lambda x: ref_smoothed_cross_entropy(x, labels, 7, 0.1),
            cls_logits,
        ),
    }


LOSSES = _loss_functions()


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_finite_differences_of_the_reference(name):
    loss, reference, point = LOSSES[name]
    grad = np.asarray(jax.jit(jax.grad(loss))(point), dtype=np.float64)
    rng = np.random.default_rng(1)
    for _ in range(3):
        direction = rng.normal(size=point.shape)
        expected = _directional_derivative(reference, point.astype(np.float64), direction)
        np.testing.assert_allclose(np.sum(grad * direction), expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_falls_along_its_negative_gradient(name):
    loss, _, point = LOSSES[name]
    loss = jax.jit(loss)
    grad = jax.jit(jax.grad(loss))(point)
    before = float(loss(point))
    step = 1e-2 / float(jnp.linalg.norm(grad))
    after = float(loss(point - step * grad))
    # First order: the fall is ≈ step·||g||²; demand half of it, which rounding cannot fake.
    assert before - after > 0.5 * step * float(jnp.sum(grad**2))


def test_jit_and_eager_agree():
    z1, z2 = view_pair(11, 10, 12)
    logits, images = image_case(12)
    cls_logits, labels = classification_case(13)
    pairs = [
        (nt_xent_loss, (z1, z2, 0.3), {}),
        (reconstruction_loss, (logits, images), {"kind": "mse"}),
        (reconstruction_loss, (logits, images), {"kind": "bernoulli"}),
        (smoothed_cross_entropy, (cls_logits, labels), {"num_classes": 7, "smoothing": 0.2}),
        (cosine_momentum, (37, 100, 0.99), {}),
    ]
    for fn, args, static in pairs:
        jitted = jax.jit(fn, static_argnames=tuple(static))(*args, **static)
        eager = fn(*args, **static)
        for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=fn.__name__)
    queue, items = jnp.zeros((5, 3)), jnp.ones((2, 3))
    np.testing.assert_array_equal(jax.jit(fifo_enqueue)(queue, items), fifo_enqueue(queue, items))
    target, online = {"w": jnp.ones(3)}, {"w": jnp.arange(3.0)}
    np.testing.assert_allclose(
        jax.jit(ema_update)(target, online, 0.9)["w"], ema_update(target, online, 0.9)["w"]
    )


@pytest.mark.parametrize("decay", ["cosine", "linear"])
@pytest.mark.parametrize(("total_steps", "warmup"), [(100, 0), (50, 10)])
def test_learning_rate_schedule_matches_its_formula(decay, total_steps, warmup):
    """Warmup 0 → peak over ``warmup`` steps, then peak → peak·f by a half cosine or a line."""
    import ml_collections

    from ssl_jax.optim import learning_rate_schedule

    peak, fraction = 0.025, 0.004
    optim = ml_collections.ConfigDict(
        dict(lr=peak, lr_scaling="none", warmup_steps=warmup, end_lr_fraction=fraction)
    )
    optim.decay = decay
    schedule = learning_rate_schedule(optim, total_steps, global_batch=16)
    end = peak * fraction
    for step in [0, 1, warmup // 2, warmup, (total_steps + warmup) // 2, total_steps - 1]:
        if step < warmup:
            expected = peak * step / warmup
        else:
            progress = (step - warmup) / (total_steps - warmup)
            shape = (1 + np.cos(np.pi * progress)) / 2 if decay == "cosine" else 1 - progress
            expected = end + (peak - end) * shape
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-9), step
    assert float(schedule(total_steps + 3)) == pytest.approx(end, rel=1e-5)
