"""ssl_jax.losses against NumPy references written from the formulas, not from ssl_jax's code.

Each reference follows the formula in the loss's docstring (and its paper, notes 001 §3.4 and
002) with plain float64 NumPy loops; nothing from ssl_jax builds it. The JAX losses run in
float32 under ``jax.jit`` with the hyperparameters traced and must agree to 1e-5 relative on
several fixed-seed cases. Then: the special cases each formula implies, a few gradient steps on
free embeddings lowering every loss, jit against eager, and the dtypes (bfloat16 reduced in
float32, float64 kept float64 end to end). Tiny shapes only: the file runs in seconds.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import losses
from ssl_jax.objectives.simclr import nt_xent_loss

TOL = dict(rtol=1e-5, atol=1e-6)

# Compiled once per shape; the hyperparameters are traced arguments (no recompiles per value),
# the Python-level options static. Eager calls compile every primitive separately and cost
# seconds here, so the tests call these (test_jit_and_eager_agree checks eager against jit).
# Compilation dominates this file: at LLVM level 0 these small programs compile about 2.5×
# faster than at the suite's level 1 (the same HLO; only LLVM's optimisation of it differs).
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def jit(fn, **kwargs):
    return jax.jit(fn, compiler_options=FAST_COMPILE, **kwargs)


l2_normalize_jit = jit(losses.l2_normalize)
accuracy_jit = jit(losses.contrastive_accuracy)
nt_xent_jit = jit(losses.nt_xent)
nt_xent_logits_jit = jit(losses.nt_xent_logits)
info_nce_jit = jit(losses.info_nce, static_argnames="normalize")
info_nce_logits_jit = jit(losses.info_nce_logits)
batch_info_nce_jit = jit(losses.batch_info_nce, static_argnames="normalize")
clip_jit = jit(losses.clip_loss)
supcon_jit = jit(losses.supcon_loss)
margin_jit = jit(losses.margin_contrastive_loss)
triplet_jit = jit(losses.triplet_loss, static_argnames="squared")
distances_jit = jit(losses.pairwise_distances, static_argnames="squared")
batch_hard_jit = jit(losses.batch_hard_triplet_loss, static_argnames="squared")
semi_hard_jit = jit(losses.semi_hard_triplet_loss, static_argnames="squared")
byol_jit = jit(losses.byol_loss)
simsiam_jit = jit(losses.simsiam_loss)
barlow_jit = jit(losses.barlow_twins_loss)
vicreg_terms_jit = jit(losses.vicreg_terms)
vicreg_jit = jit(losses.vicreg_loss)
dino_jit = jit(losses.dino_loss)
center_jit = jit(losses.dino_center_update)
hsic_jit = jit(losses.hsic, static_argnames="kernel")
hsic_loss_jit = jit(losses.hsic_loss)
ssl_hsic_jit = jit(losses.ssl_hsic_loss, static_argnames="kernel")


# --- References (float64 NumPy, from the formulas) ---------------------------------------------


def f64(x):
    return np.asarray(x, dtype=np.float64)


def ref_unit(x):
    x = f64(x)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ref_log_softmax(scores, index):
    """log [exp(s_index) / Σ_j exp(s_j)], shifted by the max."""
    scores = f64(scores)
    top = scores.max()
    return scores[index] - top - np.log(np.sum(np.exp(scores - top)))


def ref_nt_xent(z1, z2, temperature):
    views = ref_unit(np.concatenate([z1, z2]))
    n, batch = len(views), len(z1)
    values, hits = [], []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        scores = [views[i] @ views[j] / temperature for j in others]
        positive = others.index((i + batch) % n)
        values.append(-ref_log_softmax(scores, positive))
        hits.append(int(np.argmax(scores)) == positive)
    return np.mean(values), np.mean(hits)


def ref_info_nce(query, positive_key, negative_keys, temperature, normalize=True):
    unit = ref_unit if normalize else f64
    q, k_pos, k_neg = unit(query), unit(positive_key), unit(negative_keys)
    values = []
    for b in range(len(q)):
        scores = [q[b] @ k_pos[b] / temperature]
        scores += [q[b] @ k_neg[i] / temperature for i in range(len(k_neg))]
        values.append(-ref_log_softmax(scores, 0))
    return np.mean(values)


def ref_batch_info_nce(query, key, temperature, normalize=True):
    unit = ref_unit if normalize else f64
    q, k = unit(query), unit(key)
    values = []
    for i in range(len(q)):
        scores = [q[i] @ k[j] / temperature for j in range(len(k))]
        values.append(-ref_log_softmax(scores, i))
    return np.mean(values)


def ref_clip(image, text, temperature):
    u, v = ref_unit(image), ref_unit(text)
    b = len(u)
    image_to_text = [
        -ref_log_softmax([u[i] @ v[j] / temperature for j in range(b)], i) for i in range(b)
    ]
    text_to_image = [
        -ref_log_softmax([u[i] @ v[j] / temperature for i in range(b)], j) for j in range(b)
    ]
    return (np.mean(image_to_text) + np.mean(text_to_image)) / 2


def ref_supcon(z, labels, temperature):
    u = ref_unit(z)
    values = []
    for i in range(len(u)):
        candidates = [a for a in range(len(u)) if a != i]
        positives = [p for p in candidates if labels[p] == labels[i]]
        if not positives:
            continue
        scores = [u[i] @ u[a] / temperature for a in candidates]
        log_probs = [ref_log_softmax(scores, candidates.index(p)) for p in positives]
        values.append(-np.mean(log_probs))
    return np.mean(values)


def ref_margin_contrastive(z_a, z_b, same, margin):
    total = 0.0
    for a, b, y in zip(f64(z_a), f64(z_b), f64(same), strict=True):
        d = np.sqrt(np.sum((a - b) ** 2))
        total += y * d**2 + (1 - y) * max(0.0, margin - d) ** 2
    return total / len(z_a) / 2


def ref_distance(a, b, squared):
    squared_distance = float(np.sum((f64(a) - f64(b)) ** 2))
    return squared_distance if squared else np.sqrt(squared_distance)


def ref_triplet(anchor, positive, negative, margin, squared=True):
    terms = []
    for a, p, n in zip(anchor, positive, negative, strict=True):
        terms.append(max(0.0, ref_distance(a, p, squared) - ref_distance(a, n, squared) + margin))
    return np.mean(terms)


def ref_pairwise(x, squared):
    n = len(x)
    return np.array([[ref_distance(x[i], x[j], squared) for j in range(n)] for i in range(n)])


def ref_batch_hard(x, labels, margin, squared):
    d = ref_pairwise(x, squared)
    terms = []
    for a in range(len(x)):
        pos = [d[a, p] for p in range(len(x)) if p != a and labels[p] == labels[a]]
        neg = [d[a, n] for n in range(len(x)) if labels[n] != labels[a]]
        if pos and neg:
            terms.append(max(0.0, max(pos) - min(neg) + margin))
    return np.mean(terms)


def ref_semi_hard(x, labels, margin, squared):
    """FaceNet: per (a, p), the closest negative with d_ap < d_an < d_ap + m; else the farthest
    negative. Also returns how often each case arose."""
    d = ref_pairwise(x, squared)
    terms, kinds = [], {"semi_hard": 0, "beyond_margin": 0, "none_farther": 0}
    for a in range(len(x)):
        negatives = [d[a, n] for n in range(len(x)) if labels[n] != labels[a]]
        for p in range(len(x)):
            if p == a or labels[p] != labels[a] or not negatives:
                continue
            semi_hard = [dn for dn in negatives if d[a, p] < dn < d[a, p] + margin]
            chosen = min(semi_hard) if semi_hard else max(negatives)
            if semi_hard:
                kinds["semi_hard"] += 1
            elif any(dn > d[a, p] for dn in negatives):
                kinds["beyond_margin"] += 1
            else:
                kinds["none_farther"] += 1
            terms.append(max(0.0, d[a, p] - chosen + margin))
    return np.mean(terms), kinds


def ref_byol(prediction, target):
    p, z = ref_unit(prediction), ref_unit(target)
    return np.mean([2 - 2 * p[b] @ z[b] for b in range(len(p))])


def ref_simsiam(prediction, target):
    p, z = ref_unit(prediction), ref_unit(target)
    return np.mean([-(p[b] @ z[b]) for b in range(len(p))])


def ref_standardize(z, eps):
    z = f64(z).copy()
    for j in range(z.shape[1]):
        column = z[:, j]
        mean = np.mean(column)
        variance = np.mean((column - mean) ** 2)
        z[:, j] = (column - mean) / np.sqrt(variance + eps)
    return z


def ref_cross_correlation(z1, z2, eps):
    a, b = ref_standardize(z1, eps), ref_standardize(z2, eps)
    n = len(a)
    return np.array(
        [
            [sum(a[k, i] * b[k, j] for k in range(n)) / n for j in range(b.shape[1])]
            for i in range(a.shape[1])
        ]
    )


def ref_barlow_twins(z1, z2, lambd, eps=1e-5, off_target=0.0):
    c = ref_cross_correlation(z1, z2, eps)
    d = len(c)
    on = sum((1 - c[i, i]) ** 2 for i in range(d))
    off = sum((c[i, j] - off_target) ** 2 for i in range(d) for j in range(d) if j != i)
    return on + lambd * off


def ref_vicreg_terms(z1, z2):
    z1, z2 = f64(z1), f64(z2)
    n, d = z1.shape

    def branch(z):
        mean = z.mean(axis=0)
        std = [np.sqrt(np.sum((z[:, j] - mean[j]) ** 2) / (n - 1) + 1e-4) for j in range(d)]
        cov = [
            [np.sum((z[:, i] - mean[i]) * (z[:, j] - mean[j])) / (n - 1) for j in range(d)]
            for i in range(d)
        ]
        variance = np.mean([max(0.0, 1 - s) for s in std])
        covariance = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
        return variance, covariance

    (v1, c1), (v2, c2) = branch(z1), branch(z2)
    invariance = np.mean((z1 - z2) ** 2)
    return {"invariance": invariance, "variance": v1 / 2 + v2 / 2, "covariance": c1 + c2}


def ref_vicreg(z1, z2, sim, std, cov):
    t = ref_vicreg_terms(z1, z2)
    return sim * t["invariance"] + std * t["variance"] + cov * t["covariance"]


def ref_softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def ref_dino(student, teacher, center, student_temp, teacher_temp):
    student, teacher, center = f64(student), f64(teacher), f64(center).reshape(-1)
    pair_losses = []
    for i in range(len(teacher)):
        for j in range(len(student)):
            if i == j:
                continue
            per_example = []
            for b in range(student.shape[1]):
                p_teacher = ref_softmax((teacher[i, b] - center) / teacher_temp)
                log_p_student = np.log(ref_softmax(student[j, b] / student_temp))
                per_example.append(-np.sum(p_teacher * log_p_student))
            pair_losses.append(np.mean(per_example))
    return np.mean(pair_losses)


def ref_center_update(center, teacher, momentum):
    teacher = f64(teacher)
    rows = [teacher[v, b] for v in range(teacher.shape[0]) for b in range(teacher.shape[1])]
    return momentum * f64(center) + (1 - momentum) * np.mean(rows, axis=0)


def ref_gram(x, kernel, bandwidth=1.0):
    x = f64(x)
    n = len(x)
    if kernel == "linear":
        return np.array([[x[i] @ x[j] for j in range(n)] for i in range(n)])
    return np.array(
        [
            [np.exp(-np.sum((x[i] - x[j]) ** 2) / (2 * bandwidth**2)) for j in range(n)]
            for i in range(n)
        ]
    )


def ref_hsic_grams(k, l_gram):
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l_gram @ h) / (n - 1) ** 2


def ref_hsic(x, y, kernel="linear", bandwidth=1.0):
    return ref_hsic_grams(ref_gram(x, kernel, bandwidth), ref_gram(y, kernel, bandwidth))


def ref_ssl_hsic(z, labels, gamma, kernel="linear", bandwidth=1.0):
    k = ref_gram(z, kernel, bandwidth)
    same = np.array([[float(a == b) for b in labels] for a in labels])
    return -ref_hsic_grams(k, same) + gamma * np.sqrt(ref_hsic_grams(k, k))


# --- Cases ----------------------------------------------------------------------------------------


def view_pair(seed, batch, dim, noise=0.6):
    """Two views: the second is the first plus noise."""
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=(batch, dim))
    z2 = z1 + noise * rng.normal(size=(batch, dim))
    return z1.astype(np.float32), z2.astype(np.float32)


def normal(seed, *shape, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


SEEDS = [0, 1, 2]
TEMPERATURES = {0: 0.1, 1: 0.5, 2: 1.0}
LABELS = np.array([0, 1, 0, 2, 1, 0, 3, 2, 1, 4])  # classes 3 and 4: anchors without a positive


def mined_case(seed):
    """10 embeddings in 4 dims with LABELS, spread enough that every mining branch occurs."""
    return normal(100 + seed, 10, 4)


def orthogonal_unit_variance(seed, n, d):
    """[n, d] with centred, mutually orthogonal columns of biased variance 1: C = I."""
    a = np.random.default_rng(seed).normal(size=(n, d))
    q, _ = np.linalg.qr(a - a.mean(axis=0))
    return q * np.sqrt(n)


# --- Values against the references ---------------------------------------------------------------


def test_l2_normalize_gives_unit_rows_and_leaves_zero_rows_at_zero():
    x = normal(0, 5, 3)
    x[2] = 0.0
    got = np.asarray(l2_normalize_jit(x))
    expected = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    np.testing.assert_allclose(got, expected, **TOL)
    assert np.all(got[2] == 0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_nt_xent_and_its_logits_match_the_reference(seed):
    z1, z2 = view_pair(seed, 5, 5)
    temperature = TEMPERATURES[seed]
    expected_loss, expected_accuracy = ref_nt_xent(z1, z2, temperature)
    loss = nt_xent_jit(z1, z2, temperature)
    assert loss.dtype == jnp.float32
    np.testing.assert_allclose(float(loss), expected_loss, **TOL)
    logits, positives = nt_xent_logits_jit(z1, z2, temperature)
    assert logits.shape == (10, 10) and np.all(np.isneginf(np.diagonal(logits)))
    np.testing.assert_array_equal(positives, (np.arange(10) + 5) % 10)
    accuracy = float(accuracy_jit(logits, positives))
    assert accuracy == pytest.approx(expected_accuracy, abs=1e-7)
    # SimCLR's objective keeps its (loss, accuracy) wrapper, with the same loss bit for bit.
    wrapped_loss, wrapped_accuracy = jit(nt_xent_loss)(z1, z2, temperature)
    assert float(wrapped_loss) == float(loss) and float(wrapped_accuracy) == accuracy


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_info_nce_matches_the_reference(seed, normalize):
    scale = 1.0 if normalize else 0.4
    query, positive = view_pair(seed, 5, 6)
    negatives = normal(10 + seed, 7, 6, scale=scale)
    temperature = TEMPERATURES[seed]
    got = info_nce_jit(scale * query, scale * positive, negatives, temperature, normalize=normalize)
    expected = ref_info_nce(scale * query, scale * positive, negatives, temperature, normalize)
    np.testing.assert_allclose(float(got), expected, **TOL)


def test_info_nce_logits_put_the_positive_first():
    query, positive = view_pair(3, 5, 6)
    negatives = normal(13, 7, 6)
    logits, labels = info_nce_logits_jit(query, positive, negatives, 0.2)
    assert logits.shape == (5, 8) and labels.shape == (5,) and not np.any(labels)
    expected_first = np.sum(ref_unit(query) * ref_unit(positive), axis=1) / 0.2
    np.testing.assert_allclose(np.asarray(logits)[:, 0], expected_first, **TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_info_nce_matches_the_reference_and_is_info_nce_per_row(seed):
    query, key = view_pair(seed, 6, 4)
    temperature = TEMPERATURES[seed]
    got = float(batch_info_nce_jit(query, key, temperature, normalize=True))
    np.testing.assert_allclose(got, ref_batch_info_nce(query, key, temperature), **TOL)
    unnormalised = float(batch_info_nce_jit(query, key, temperature, normalize=False))
    np.testing.assert_allclose(
        unnormalised, ref_batch_info_nce(query, key, temperature, False), **TOL
    )
    # Special case: row i is the queue form with the other B − 1 keys as its negatives.
    rows = [
        info_nce_jit(
            query[i : i + 1], key[i : i + 1], np.delete(key, i, axis=0), temperature, normalize=True
        )
        for i in range(6)
    ]
    np.testing.assert_allclose(got, float(np.mean(rows)), **TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_clip_loss_matches_the_reference_and_averages_both_directions(seed):
    image, text = view_pair(seed, 6, 4, noise=1.0)
    temperature = TEMPERATURES[seed]
    got = float(clip_jit(image, text, temperature))
    np.testing.assert_allclose(got, ref_clip(image, text, temperature), **TOL)
    both = batch_info_nce_jit(image, text, temperature, normalize=True) + batch_info_nce_jit(
        text, image, temperature, normalize=True
    )
    np.testing.assert_allclose(got, float(both) / 2, **TOL)


def test_clip_temperature_gradient_is_finite_and_matches_finite_differences(descent):
    # The clip problem learns t = log(1/τ) with the embeddings, as CLIP does.
    image, text, t = PROBLEMS["clip"][1]
    grad = float(descent["clip"][2][2])
    h = 1e-5
    expected = (
        ref_clip(image, text, np.exp(-(t + h))) - ref_clip(image, text, np.exp(-(t - h)))
    ) / (2 * h)
    assert np.isfinite(grad)
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_supcon_matches_the_reference(seed):
    z = normal(seed, len(LABELS), 5)
    temperature = TEMPERATURES[seed]
    got = float(supcon_jit(z, LABELS, temperature))
    np.testing.assert_allclose(got, ref_supcon(z, LABELS, temperature), **TOL)


def test_supcon_with_image_labels_over_two_views_is_nt_xent():
    z1, z2 = view_pair(5, 5, 5)  # the shapes of the NT-Xent and SupCon cases above
    labels = np.concatenate([np.arange(5), np.arange(5)])
    got = float(supcon_jit(np.concatenate([z1, z2]), labels, 0.3))
    np.testing.assert_allclose(got, float(nt_xent_jit(z1, z2, 0.3)), **TOL)


def test_supcon_without_any_positive_is_zero():
    assert float(supcon_jit(normal(0, len(LABELS), 5), np.arange(len(LABELS)), 0.5)) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_margin_contrastive_loss_matches_the_reference(seed):
    z_a, z_b = view_pair(seed, 8, 3, noise=1.0)
    same = np.random.default_rng(seed).integers(0, 2, size=8)
    margin = [1.0, 2.0, 3.0][seed]
    got = float(margin_jit(z_a, z_b, same, margin))
    np.testing.assert_allclose(got, ref_margin_contrastive(z_a, z_b, same, margin), **TOL)


def test_margin_contrastive_loss_of_coinciding_negatives_is_the_hinge_maximum():
    z = normal(1, 8, 3)
    value = float(margin_jit(z, z, np.zeros(8, dtype=np.int64), 1.5))
    assert value == pytest.approx(1.5**2 / 2, rel=1e-6)  # m²/2 per pair at d = 0


@pytest.mark.parametrize("name", ["margin_contrastive", "triplet", "batch_hard"])
def test_gradients_are_finite_where_a_distance_is_zero(descent, name):
    # These problems contain coinciding embeddings (a pair, an anchor and its positive, and the
    # diagonal of the pairwise distances) under the Euclidean distance, whose √ has an infinite
    # derivative at 0: the losses take it as 0.
    assert all(np.all(np.isfinite(g)) for g in descent[name][2])


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_triplet_loss_matches_the_reference(seed, squared):
    anchor, positive = view_pair(seed, 8, 3)
    negative = normal(20 + seed, 8, 3)
    margin = [0.5, 1.0, 2.0][seed]
    got = float(triplet_jit(anchor, positive, negative, margin, squared=squared))
    np.testing.assert_allclose(got, ref_triplet(anchor, positive, negative, margin, squared), **TOL)


def test_triplet_loss_is_zero_when_every_negative_is_far_enough():
    anchor = normal(2, 8, 3)
    assert float(triplet_jit(anchor, anchor, anchor + 10.0, 1.0, squared=True)) == 0.0


@pytest.mark.parametrize("squared", [True, False])
def test_pairwise_distances_match_the_reference(squared):
    x = mined_case(0)
    got = np.asarray(distances_jit(x, squared=squared))
    np.testing.assert_allclose(got, ref_pairwise(x, squared), **TOL)
    assert np.all(np.diagonal(got) == 0.0)


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_batch_hard_triplet_loss_matches_brute_force(seed, squared):
    x = mined_case(seed)
    margin = [0.5, 1.0, 3.0][seed]
    got = float(batch_hard_jit(x, LABELS, margin, squared=squared))
    np.testing.assert_allclose(got, ref_batch_hard(x, LABELS, margin, squared), **TOL)


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_semi_hard_triplet_loss_matches_brute_force(seed, squared):
    x = mined_case(seed)
    margin = [0.5, 1.0, 3.0][seed]
    got = float(semi_hard_jit(x, LABELS, margin, squared=squared))
    np.testing.assert_allclose(got, ref_semi_hard(x, LABELS, margin, squared)[0], **TOL)


def test_semi_hard_cases_exercise_every_branch():
    # Guards the test above: semi-hard negatives, only negatives beyond the margin, and none
    # farther than the positive (the fallback) all occur.
    totals = {"semi_hard": 0, "beyond_margin": 0, "none_farther": 0}
    for seed in SEEDS:
        for squared in (True, False):
            _, kinds = ref_semi_hard(mined_case(seed), LABELS, [0.5, 1.0, 3.0][seed], squared)
            totals = {k: totals[k] + kinds[k] for k in totals}
    assert all(count > 0 for count in totals.values()), totals


@pytest.mark.parametrize("seed", SEEDS)
def test_byol_and_simsiam_match_the_reference(seed):
    prediction, target = view_pair(seed, 6, 5, noise=1.0)
    np.testing.assert_allclose(
        float(byol_jit(prediction, target)), ref_byol(prediction, target), **TOL
    )
    np.testing.assert_allclose(
        float(simsiam_jit(prediction, target)), ref_simsiam(prediction, target), **TOL
    )
    # BYOL's 2 − 2 cos is the squared distance of the normalised vectors.
    difference = ref_unit(prediction) - ref_unit(target)
    np.testing.assert_allclose(
        float(byol_jit(prediction, target)), np.mean(np.sum(difference**2, 1)), **TOL
    )


@pytest.mark.parametrize("name", ["byol", "simsiam"])
def test_byol_and_simsiam_send_no_gradient_to_the_target(descent, name):
    grad_prediction, grad_target = descent[name][2]
    assert np.all(np.asarray(grad_target) == 0.0)
    assert np.any(np.asarray(grad_prediction) != 0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_barlow_twins_matches_the_reference(seed):
    z1, z2 = view_pair(seed, 8, 4, noise=1.0)
    z1 = z1 * np.array([1.0, 3.0, 0.5, 2.0], dtype=np.float32) + 1.0  # uneven scales and offsets
    lambd = [0.0051, 0.1, 1.0][seed]
    np.testing.assert_allclose(
        float(barlow_jit(z1, z2, lambd, eps=1e-5)), ref_barlow_twins(z1, z2, lambd), **TOL
    )


def test_barlow_twins_is_zero_when_the_cross_correlation_is_the_identity():
    z = orthogonal_unit_variance(0, 8, 4)
    assert float(barlow_jit(z, z, 1.0, eps=0.0)) == pytest.approx(0.0, abs=1e-10)
    # Standardisation removes per-dimension scales and offsets; the default eps leaves ~D·eps².
    shifted = (z * np.array([2.0, 0.5, 3.0, 1.0]) - 4.0).astype(np.float32)
    assert float(barlow_jit(z, shifted, 1.0, eps=1e-5)) == pytest.approx(0.0, abs=1e-8)
    assert float(barlow_jit(z, z[:, ::-1], 1.0, eps=1e-5)) > 1.0  # not the identity


@pytest.mark.parametrize("seed", SEEDS)
def test_vicreg_terms_and_loss_match_the_reference(seed):
    z1, z2 = view_pair(seed, 8, 4, noise=1.0)
    z1 = z1 * [0.3, 0.7, 1.5, 0.9][seed]  # some dimensions below std 1, some above
    terms = vicreg_terms_jit(z1, z2)
    for name, expected in ref_vicreg_terms(z1, z2).items():
        np.testing.assert_allclose(float(terms[name]), expected, err_msg=name, **TOL)
    coeffs = [(25.0, 25.0, 1.0), (1.0, 2.0, 3.0), (0.5, 10.0, 0.1)][seed]
    np.testing.assert_allclose(
        float(vicreg_jit(z1, z2, *coeffs)), ref_vicreg(z1, z2, *coeffs), **TOL
    )


def test_vicreg_terms_vanish_in_their_special_cases():
    z = orthogonal_unit_variance(1, 8, 4) * 1.2  # unbiased std = 1.2·√(8/7) > 1, decorrelated
    terms = vicreg_terms_jit(z, z)
    assert float(terms["variance"]) == 0.0
    assert float(terms["invariance"]) == 0.0
    assert float(terms["covariance"]) == pytest.approx(0.0, abs=1e-10)
    shrunk = vicreg_terms_jit(0.5 * z, 0.5 * z)  # std 0.64: relu(1 − std) per dimension
    expected = 1 - np.sqrt(0.6 * 0.6 * 8 / 7 + 1e-4)
    assert float(shrunk["variance"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_dino_loss_matches_the_reference(seed):
    rng = np.random.default_rng(seed)
    student = normal(seed, 4, 3, 6, scale=2.0)  # 2 global + 2 local crops, B = 3, K = 6
    teacher = (student[:2] + 0.5 * rng.normal(size=(2, 3, 6))).astype(np.float32)
    center = normal(50 + seed, 6, scale=0.3)
    temps = [(0.1, 0.04), (0.2, 0.07), (1.0, 0.5)][seed]
    got = float(dino_jit(student, teacher, center, *temps))
    np.testing.assert_allclose(got, ref_dino(student, teacher, center, *temps), **TOL)


def test_dino_with_as_many_teacher_views_as_student_views():
    student, teacher = normal(7, 2, 3, 5), normal(8, 2, 3, 5)
    center = np.zeros((1, 5), np.float32)  # [1, K] as in DINO's code
    got = float(dino_jit(student, teacher, center, 0.1, 0.04))
    np.testing.assert_allclose(got, ref_dino(student, teacher, center, 0.1, 0.04), **TOL)
    with pytest.raises(ValueError, match="pair"):  # one view: no pair i ≠ j
        jax.eval_shape(losses.dino_loss, student[:1], teacher[:1], center, 0.1, 0.04)


def test_dino_sends_no_gradient_to_the_teacher_or_the_center(descent):
    grad_student, grad_teacher, grad_center = descent["dino"][2]
    assert np.all(np.asarray(grad_teacher) == 0.0) and np.all(np.asarray(grad_center) == 0.0)
    assert np.any(np.asarray(grad_student) != 0.0)


@pytest.mark.parametrize("momentum", [0.0, 0.9, 0.996])
def test_dino_center_update_matches_the_reference(momentum):
    center, teacher = normal(4, 1, 6), normal(5, 2, 3, 6)
    got = center_jit(center, teacher, momentum)
    assert got.shape == (1, 6) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref_center_update(center, teacher, momentum), **TOL)


@pytest.mark.parametrize(
    ("kernel", "bandwidth"), [("linear", 1.0), ("gaussian", 1.0), ("gaussian", 2.5)]
)
@pytest.mark.parametrize("seed", SEEDS)
def test_hsic_matches_the_reference(seed, kernel, bandwidth):
    x, y = view_pair(seed, 7, 3, noise=1.0)
    got = float(hsic_jit(x, y[:, :2], kernel=kernel, bandwidth=bandwidth))
    np.testing.assert_allclose(got, ref_hsic(x, y[:, :2], kernel, bandwidth), **TOL)


def test_hsic_special_cases():
    x, y = view_pair(6, 7, 3)
    y = y[:, :2]  # the shapes of the reference cases: no new compilation
    # A constant variable is independent of anything: HSIC = 0.
    constant = hsic_jit(x, np.ones_like(y), kernel="linear", bandwidth=1.0)
    assert float(constant) == pytest.approx(0.0, abs=1e-6)
    # Linear kernel: the squared Frobenius norm of the cross-covariance; on standardised views
    # that is n²/(n − 1)² Σ_ij C_ij², Barlow Twins' cross-correlation.
    c = ref_cross_correlation(x, y, 0.0)
    got = float(
        hsic_jit(ref_standardize(x, 0.0), ref_standardize(y, 0.0), kernel="linear", bandwidth=1.0)
    )
    np.testing.assert_allclose(got, 49 / 36 * np.sum(c**2), **TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_hsic_loss_matches_the_reference(seed):
    z1, z2 = view_pair(seed, 8, 4, noise=1.0)
    lambd = [0.0051, 0.1, 1.0][seed]
    got = float(hsic_loss_jit(z1, z2, lambd))
    np.testing.assert_allclose(got, ref_barlow_twins(z1, z2, lambd, off_target=-1.0), **TOL)


@pytest.mark.parametrize(
    ("kernel", "gamma"), [("linear", 1.0), ("gaussian", 0.5), ("gaussian", 3.0)]
)
@pytest.mark.parametrize("seed", SEEDS)
def test_ssl_hsic_loss_matches_the_reference(seed, kernel, gamma):
    z = normal(seed, len(LABELS), 4)
    got = float(ssl_hsic_jit(z, LABELS, gamma, kernel=kernel, bandwidth=1.5))
    np.testing.assert_allclose(got, ref_ssl_hsic(z, LABELS, gamma, kernel, 1.5), **TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_mi_lower_bound_never_exceeds_log_of_the_candidates(seed):
    query, positive = view_pair(seed, 5, 6, noise=3.0)
    negatives = normal(30 + seed, 7, 6)  # M = 1 + 7 candidates
    for temperature in (0.05, 0.5, 5.0):
        loss = info_nce_jit(query, positive, negatives, temperature, normalize=True)
        assert float(loss) >= 0.0
        bound = float(losses.mi_lower_bound(loss, 8))
        assert bound <= np.log(8)
        assert bound == pytest.approx(np.log(8) - float(loss), abs=1e-6)


# --- Gradient descent, jit and dtypes -------------------------------------------------------------


def _problems():
    """name → (loss of a tuple of free float32 arrays, those arrays)."""
    z1, z2 = view_pair(40, 8, 4, noise=1.0)
    x = mined_case(1)
    student = normal(41, 3, 4, 6)
    same = np.array([0, 1, 1, 0, 1, 0, 1, 0], dtype=bool)  # bool here, 0/1 in the cases above
    touching = z1.copy()  # pair 0 (a negative) and pair 1 (a positive) coincide: d = 0
    touching[[0, 1]] = z2[[0, 1]]
    t = np.float32(np.log(1 / 0.07))
    return {
        "nt_xent": (lambda p: losses.nt_xent(p[0], p[1], 0.5), (z1, z2)),
        "info_nce": (lambda p: losses.info_nce(p[0], p[1], p[2], 0.5), (z1, z2, normal(42, 6, 4))),
        "batch_info_nce": (lambda p: losses.batch_info_nce(p[0], p[1], 0.5), (z1, z2)),
        "clip": (lambda p: losses.clip_loss(p[0], p[1], jnp.exp(-p[2])), (z1, z2, t)),
        "supcon": (lambda p: losses.supcon_loss(p[0], LABELS, 0.5), (x,)),
        "margin_contrastive": (
            lambda p: losses.margin_contrastive_loss(p[0], p[1], same, 4.0),
            (touching, z2),
        ),
        "triplet": (
            lambda p: losses.triplet_loss(p[0], p[1], p[2], 2.0, squared=False),
            (touching, z2, normal(43, 8, 4)),
        ),
        "batch_hard": (lambda p: losses.batch_hard_triplet_loss(p[0], LABELS, 2.0), (x,)),
        "semi_hard": (lambda p: losses.semi_hard_triplet_loss(p[0], LABELS, 2.0), (x,)),
        "byol": (lambda p: losses.byol_loss(p[0], p[1]), (z1, z2)),
        "simsiam": (lambda p: losses.simsiam_loss(p[0], p[1]), (z1, z2)),
        "barlow_twins": (lambda p: losses.barlow_twins_loss(p[0], p[1], 0.0051), (z1, z2)),
        "vicreg": (lambda p: losses.vicreg_loss(p[0], p[1]), (0.5 * z1, 0.5 * z2)),
        "dino": (
            lambda p: losses.dino_loss(p[0], p[1], p[2], 0.1, 0.04),
            (student, student[:2] + 1, normal(44, 6, scale=0.1)),
        ),
        "hsic_loss": (lambda p: losses.hsic_loss(p[0], p[1], 0.0051), (z1, z2)),
        "ssl_hsic": (lambda p: losses.ssl_hsic_loss(p[0], LABELS, 1.0, kernel="gaussian"), (x,)),
    }


PROBLEMS = _problems()


def _descent_step(loss):
    """One normalised gradient step of length 0.05: (loss, ||g||, g, new arrays), jitted.

    Compiled at LLVM level 0, like the functions above."""

    def step(params):
        value, grads = jax.value_and_grad(loss)(params)
        norm = jnp.sqrt(sum(jnp.sum(g * g) for g in grads))
        new = tuple(p - 0.05 * g / norm for p, g in zip(params, grads, strict=True))
        return value, norm, grads, new

    return jit(step)


@pytest.fixture(scope="module")
def descent():
    """Five gradient steps on every problem, the hyperparameters Python constants under jit:
    name → (loss values, gradient norms, first gradient)."""
    history = {}
    for name, (loss, params) in PROBLEMS.items():
        step = _descent_step(loss)
        params = tuple(jnp.asarray(p) for p in params)
        values, norms, first_grads = [], [], None
        for _ in range(6):
            value, norm, grads, params = step(params)
            values.append(float(value))
            norms.append(float(norm))
            first_grads = [np.asarray(g) for g in grads] if first_grads is None else first_grads
        history[name] = (values, norms, first_grads)
    return history


@pytest.mark.parametrize("name", PROBLEMS)
def test_gradient_steps_lower_the_loss(descent, name):
    values, norms, _ = descent[name]
    assert all(np.isfinite(n) and n > 0.0 for n in norms), norms
    assert values[-1] < values[0] - 1e-4 * abs(values[0]), values


# Eager calls compile every primitive on first use (a second or more per loss here), so eager
# runs are checked on two losses: DINO, the one with Python-level control flow (its loop over
# view pairs), and BYOL, the cheapest of those with a stop-gradient.
@pytest.mark.parametrize("name", ["dino", "byol"])
def test_jit_and_eager_agree(descent, name):
    loss, params = PROBLEMS[name]
    eager = float(loss(tuple(jnp.asarray(p) for p in params)))
    np.testing.assert_allclose(descent[name][0][0], eager, rtol=1e-6, atol=1e-7)


def test_static_and_traced_hyperparameters_agree(descent):
    # descent jits VICReg with λ, μ, ν as Python constants; vicreg_jit traces them.
    z1, z2 = PROBLEMS["vicreg"][1]
    traced = vicreg_jit(z1, z2, 25.0, 25.0, 1.0)
    np.testing.assert_allclose(float(traced), descent["vicreg"][0][0], rtol=1e-6)


def _abstract(params, dtype):
    return tuple(jax.ShapeDtypeStruct(np.shape(p), dtype) for p in params)


def test_bfloat16_inputs_are_reduced_in_float32():
    for name, (loss, params) in PROBLEMS.items():
        assert jax.eval_shape(loss, _abstract(params, jnp.bfloat16)).dtype == jnp.float32, name
    low = [np.asarray(z, dtype=jnp.bfloat16) for z in view_pair(3, 6, 4)]
    value = float(nt_xent_jit(*low, 0.5))
    np.testing.assert_allclose(value, ref_nt_xent(*low, 0.5)[0], **TOL)


def test_float64_stays_float64_end_to_end():
    with jax.enable_x64(True):
        for name, (loss, params) in PROBLEMS.items():
            jaxpr = jax.make_jaxpr(loss)(_abstract(params, jnp.float64))
            assert "f32" not in str(jaxpr), name  # no float32 intermediate anywhere
            assert jaxpr.out_avals[0].dtype == jnp.float64, name
        z1, z2 = (np.asarray(z, np.float64) for z in view_pair(2, 6, 4))
        got = float(nt_xent_jit(z1, z2, 0.3))
        np.testing.assert_allclose(got, ref_nt_xent(z1, z2, 0.3)[0], rtol=1e-12)
