"""CycleGAN (notes 003, "Cycle-GAN"): the cycle-consistency term is zero for inverse
generators and equals its formula otherwise, the adversarial terms equal theirs, the three ways
of forming the domains agree, the discriminators' loss leaves the generators alone, 8 devices
give the losses of one, the ``digit_domains`` data are unpaired, translations learn to keep the
digit, and the configs build."""

import functools
import os
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import train
from ssl_jax.adversarial import (
    PER_EXAMPLE_TERMS,
    discriminator_loss,
    generator_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from ssl_jax.config import load_config
from ssl_jax.data import load_dataset
from ssl_jax.data.datasets import ArrayDataset
from ssl_jax.data.spec import ArraySpec, decoded_spec, sample_batch
from ssl_jax.errors import UserError
from ssl_jax.objectives import make_objective
from ssl_jax.objectives.cycle_gan import (
    cycle_consistency_loss,
    inverted_domain,
    weighted_mean,
)
from tests.configs import REPO
from tests.learning import learning_config
from tests.objective_steps import Run

RNG = np.random.default_rng(0)
A = RNG.uniform(size=(6, 5, 4, 1)).astype(np.float32)
B = RNG.uniform(size=(6, 5, 4, 1)).astype(np.float32)


def mirror(x):
    """A horizontal flip: its own inverse, exactly, in any float format."""
    return x[:, :, ::-1]


# --- the losses against their formulas -------------------------------------------------------


def test_cycle_consistency_is_zero_for_inverse_generators():
    """F = G⁻¹: F(G(a)) = a and G(F(b)) = b, so L_cyc = 0 exactly (a mirror and itself), and
    to float32 rounding for G(x) = 1 − x, F(x) = 1 − x."""
    a, b = jnp.asarray(A), jnp.asarray(B)
    assert float(cycle_consistency_loss(a, b, mirror(a), mirror(b), mirror, mirror)) == 0.0

    def invert(x):
        return 1.0 - x

    inverted = cycle_consistency_loss(a, b, invert(a), invert(b), invert, invert)
    assert float(inverted) < 1e-7


def test_cycle_consistency_equals_its_formula_for_other_generators():
    """L_cyc = mean_a(mean_pixels |F(G(a)) − a|) + mean_b(mean_pixels |G(F(b)) − b|), each
    mean over its domain's examples when weights mark them."""

    def g(x):
        return jnp.square(x)

    def f(x):
        return 0.5 * x + 0.1

    want = (
        np.mean(np.abs(0.5 * A**2 + 0.1 - A), axis=(1, 2, 3)).mean()
        + np.mean(np.abs((0.5 * B + 0.1) ** 2 - B), axis=(1, 2, 3)).mean()
    )
    got = cycle_consistency_loss(jnp.asarray(A), jnp.asarray(B), g(A), f(B), g, f)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    weights = np.array([1, 0, 1, 1, 0, 0], np.float32)
    keep = weights == 1
    want = np.mean(np.abs(0.5 * A[keep] ** 2 + 0.1 - A[keep])) + np.mean(
        np.abs((0.5 * B[~keep] + 0.1) ** 2 - B[~keep])
    )
    got = cycle_consistency_loss(A, B, g(A), f(B), g, f, weights, 1 - weights)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert float(weighted_mean(jnp.ones(3), jnp.zeros(3))) == 0.0  # no example of a domain


LOGITS = np.array([-40.0, -3.0, -0.5, 0.0, 0.7, 2.5, 40.0], np.float32)


def test_adversarial_terms_equal_their_formulas():
    """Per example, in NumPy: least squares (the paper's) D (ℓ − 1)² on real, ℓ² on
    translations, G (ℓ − 1)²; non-saturating −log σ(ℓ), −log(1 − σ(ℓ)), −log σ(ℓ); hinge
    max(0, 1 − ℓ), max(0, 1 + ℓ), −ℓ. The GAN's batch losses are their means."""
    real, fake = LOGITS / 10, LOGITS[::-1] / 7
    r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    formulas = {
        "least_squares": ((r - 1) ** 2, f**2, (f - 1) ** 2),
        "non_saturating": (-np.log(sigmoid(r)), -np.log(1 - sigmoid(f)), -np.log(sigmoid(f))),
        "hinge": (np.maximum(0, 1 - r), np.maximum(0, 1 + f), -f),
    }
    for name, (d_real, d_fake, g_fake) in formulas.items():
        terms = PER_EXAMPLE_TERMS[name]
        np.testing.assert_allclose(terms.real(real), d_real, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(terms.fake(fake), d_fake, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(terms.generator(fake), g_fake, rtol=1e-5, atol=1e-7)
    library = {
        "non_saturating": (discriminator_loss, generator_loss),
        "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    }
    ones = jnp.ones(len(real))
    for name, (d_loss, g_loss) in library.items():
        d_real, d_fake, g_fake = formulas[name]
        np.testing.assert_allclose(d_loss(real, fake), d_real.mean() + d_fake.mean(), rtol=1e-5)
        np.testing.assert_allclose(g_loss(fake), g_fake.mean(), rtol=1e-5, atol=1e-7)
        weighted = weighted_mean(PER_EXAMPLE_TERMS[name].generator(fake), ones)
        np.testing.assert_allclose(weighted, g_loss(fake), rtol=1e-6, atol=1e-7)


def test_inverted_domain_pairs_each_image_with_another_example():
    x = jnp.asarray(A)
    b = np.asarray(inverted_domain(x))
    np.testing.assert_allclose(b, 1.0 - np.roll(A, 3, axis=0), atol=1e-7)
    assert not np.allclose(b, 1.0 - A)  # the i-th B image is not the i-th A image inverted


# --- the objective on tiny 8×8 digits --------------------------------------------------------

TINY = dict(generator_widths=(8, 16), residual_blocks=1, discriminator_widths=(16, 32))
GROUPS = {
    "discriminator": (
        "discriminator_a",
        "discriminator_a_head",
        "discriminator_b",
        "discriminator_b_head",
    ),
    "generator": ("generator_ab", "generator_ba"),
}
STEPS = 200


def digits_config(seed=0, **fields):
    """sklearn's digits as domain A and their inversions (of other examples) as domain B, batch
    32, Adam at 2e-3 with β₁ = 0.5 in each group. No identity term: between a domain and its
    inversion, G(b) = b pulls G towards the identity, away from the translation (at 0.5 λ the
    translations kept no digit after 100 steps)."""
    fields = {**TINY, "domains": "inverted", "identity_weight": 0.0, **fields}
    c = learning_config("cycle_gan", num_steps=STEPS, batch_size=32, **fields)
    c.seed = seed
    c.optim.update(
        name="adamw", lr=2e-3, b1=0.5, warmup_steps=0, end_lr_fraction=1.0, weight_decay=0.0
    )
    c.optim_groups = ml_collections.ConfigDict(
        {g: c.optim.copy_and_resolve_references() for g in GROUPS}
    )
    return c


@pytest.fixture(scope="module")
def started():
    """A run on digits and its first step ``(before, after, batch, key, metrics)``."""
    run = Run("cycle_gan", config=digits_config())
    return run, run.steps(1)


def test_groups_split_the_modules(started):
    run, _ = started
    assert dict(run.objective.param_groups) == GROUPS
    assert sorted(m for g in GROUPS.values() for m in g) == sorted(run.state.params)
    assert run.state.batch_stats == {}  # instance norm in G and F, no norm in D


def losses(objective, before, mixed, batch):
    """L_D at ``before`` and L_GF at ``mixed`` (the generators' update starts from the
    discriminators just updated), and L_D's gradient with respect to every module."""

    def loss(params, group):
        return objective.loss(params, {}, None, batch, jax.random.key(0), 0, group=group)[0]

    d_loss, d_grads = jax.value_and_grad(loss)(before, "discriminator")
    return d_loss, loss(mixed, "generator"), d_grads


def test_eight_devices_give_the_losses_of_one_and_d_leaves_g_alone(started):
    """Both groups' losses of the first step on 8 devices (the batch split in 8, the B images
    rolled over the global batch) equal the 1-device trainer's; L_D's gradient is exactly zero
    for G and F (translations are D's data) and not for the discriminators."""
    run, (before, after, batch, _, metrics) = started
    mixed = {**before.params, **{m: after.params[m] for m in GROUPS["discriminator"]}}
    mesh = train.make_mesh(8)
    batch = jax.device_put(jax.device_get(batch), NamedSharding(mesh, P("data")))
    params = jax.device_put((before.params, mixed), NamedSharding(mesh, P()))
    d_loss, g_loss, d_grads = jax.jit(functools.partial(losses, run.objective))(*params, batch)
    np.testing.assert_allclose(d_loss, metrics["discriminator/loss"], rtol=1e-5)
    np.testing.assert_allclose(g_loss, metrics["generator/loss"], rtol=1e-5)
    for module in GROUPS["generator"]:
        assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(d_grads[module])) == 0.0
    for module in GROUPS["discriminator"]:
        assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(d_grads[module])) > 0.0


def test_the_three_ways_of_forming_domains_agree():
    """The same A and B images give the same losses whether they come as ``images`` and
    ``images_b``, as one stream labelled by domain (means over each domain's examples), or as
    the inversions of the batch's other half: each example's terms depend on it alone."""
    spec = {"images": ArraySpec((8, 8, 1), "float32", "images")}
    two_arrays = {**spec, "images_b": spec["images"]}
    labelled = {**spec, "labels": ArraySpec((), "int32", "label", num_values=2)}
    c = digits_config(identity_weight=5.0)  # every term
    build = {}
    for domains, input_spec in (("images_b", two_arrays), ("label", labelled), ("inverted", spec)):
        c.objective.domains = domains
        build[domains] = make_objective(c, input_spec)
    a = RNG.uniform(size=(4, 8, 8, 1)).astype(np.float32)
    b = np.asarray(inverted_domain(jnp.asarray(a)))
    params = build["images_b"].init(jax.random.key(1), sample_batch(two_arrays))[0]
    batches = {
        "images_b": {"images": a, "images_b": b},
        "label": {"images": np.concatenate([b, a]), "labels": np.repeat([1, 0], 4)},
        "inverted": {"images": a},
    }
    for group in GROUPS:
        values = {
            domains: float(
                build[domains].loss(params, {}, None, batch, jax.random.key(0), 0, group=group)[0]
            )
            for domains, batch in batches.items()
        }
        assert np.allclose(list(values.values()), values["images_b"], rtol=1e-5), values


def pixel_knn_accuracy(train_x, train_y, test_x, test_y) -> float:
    """A 5-nearest-neighbour classifier on pixels (Euclidean), fitted on one domain."""
    from sklearn.neighbors import KNeighborsClassifier

    flat = [x.reshape(len(x), -1) for x in (train_x, test_x)]
    return float(KNeighborsClassifier(5).fit(flat[0], train_y).score(flat[1], test_y))


def translation_accuracies(run, params) -> dict:
    """How well translations keep the digit: a pixel classifier fitted on domain B's training
    images (inverted digits) labels G(a) of held-out digits a, and one fitted on domain A
    labels F(b); beside them, what the same classifiers make of the untranslated images."""
    data = run.dataset.readout_data(10_000, 10_000)
    train_a, test_a = data.decoded("train", "images"), data.decoded("test", "images")
    train_b, test_b = 1.0 - train_a, 1.0 - test_a  # labelled images of each domain
    train_y, test_y = data.train["labels"], data.test["labels"]
    pictures = jax.jit(run.objective.pictures)(params, {}, test_a, jax.random.key(0))
    to_b, back_to_a = np.asarray(pictures["translations_ab"][1:])  # G(a), F(G(a))
    to_a = np.asarray(pictures["translations_ba"][1])
    # translations_ba translates inverted_domain(test_a): B images of the rolled labels.
    rolled_y = np.roll(test_y, len(test_y) // 2)
    return {
        "ab": pixel_knn_accuracy(train_b, train_y, to_b, test_y),
        "ab_untranslated": pixel_knn_accuracy(train_b, train_y, test_a, test_y),
        "ba": pixel_knn_accuracy(train_a, train_y, to_a, rolled_y),
        "ba_untranslated": pixel_knn_accuracy(train_a, train_y, test_b, test_y),
        "cycle_ab": float(np.mean(np.abs(back_to_a - test_a))),  # mean |F(G(a)) − a| per pixel
    }


# Measured at seeds 0 and 1 (200 steps): a classifier of inverted digits labels G(a) right
# 0.947 / 0.960 of the time (0.087 at initialisation, 0.007 for the untranslated digits: their
# nearest inverted digits are of other classes), one of digits labels F(b) 0.953 / 0.970
# (0.110; 0.007); the training batch's cycle error per pixel is 0.145 / 0.153 at the end.
def test_translations_learn_to_keep_the_digit(started):
    """After 200 steps on unpaired digits and inverted digits, G's translations of held-out
    digits are labelled right by a pixel classifier of domain B (and F's by one of A), far
    above the same networks at initialisation and the untranslated images; the held-out cycle
    error F(G(a)) − a has fallen."""
    run, (initial, *_) = started
    run.steps(STEPS - 1)
    start = translation_accuracies(run, initial.params)
    end = translation_accuracies(run, jax.device_get(run.state.params))
    for direction in ("ab", "ba"):
        assert end[direction] > start[direction] + 0.5, (start, end)
        assert end[direction] > end[f"{direction}_untranslated"] + 0.5, (start, end)
    assert end["cycle_ab"] < 0.6 * start["cycle_ab"], (start, end)


def test_pictures_show_each_translation_and_its_cycle(started):
    run, _ = started
    images = jax.ShapeDtypeStruct((16, 8, 8, 1), jnp.float32)
    shapes = jax.eval_shape(run.objective.pictures, run.state.params, {}, images, jax.random.key(0))
    assert {k: v.shape for k, v in shapes.items()} == {
        "translations_ab": (3, 16, 8, 8, 1),
        "translations_ba": (3, 16, 8, 8, 1),
    }


# --- the data and the configs ----------------------------------------------------------------


def test_digit_domains_are_unpaired_handwritten_and_typeset_digits():
    data = load_dataset("digit_domains")
    for name in ("images", "images_b"):
        assert data.spec[name] == ArraySpec((28, 28, 1), "uint8", "images")
    assert data.spec["labels"].num_values == data.spec["labels_b"].num_values == 10
    assert data.num_train_examples == 4000 and len(data.test["images"]) == 1000
    mnist = load_dataset("mnist_subset")  # domain A is the MNIST subset, split as it is
    np.testing.assert_array_equal(data.test["images"], mnist.test["images"])
    labels_b = np.concatenate([data.train["labels_b"], data.test["labels_b"]])
    assert np.all(np.bincount(labels_b) == 500)  # 50 per digit × 10 fonts
    # Unpaired: an example's two digits agree about one time in ten, as independent draws.
    agree = np.mean(np.concatenate([data.train["labels"], data.test["labels"]]) == labels_b)
    assert 0.07 < agree < 0.13, agree
    ink = data.train["images_b"].reshape(4000, -1).max(axis=1)
    assert np.all(ink == 255)  # every typeset image holds a glyph


TWO_DOMAINS = {
    "images": ArraySpec((28, 28, 1), "float32", "images"),
    "labels": ArraySpec((), "int32", "label", num_values=10),
    "images_b": ArraySpec((28, 28, 1), "float32", "images"),
    "labels_b": ArraySpec((), "int32", "label", num_values=10),
}
HORSE2ZEBRA = {
    "images": ArraySpec((128, 128, 3), "float32", "images"),
    "labels": ArraySpec((), "int32", "label", num_values=2),
}


@pytest.mark.parametrize(
    ("config", "spec"),
    [("cycle_gan_digits", TWO_DOMAINS), ("cycle_gan_horse2zebra", HORSE2ZEBRA)],
)
def test_the_configs_build(config, spec):
    c = load_config(os.path.join(REPO, "experiments", f"{config}.py"))
    objective = make_objective(c, spec)
    params = jax.eval_shape(objective.init, jax.random.key(0), sample_batch(spec))[0]
    assert set(c.optim_groups) == set(objective.param_groups) == set(GROUPS)
    assert sorted(m for g in objective.param_groups.values() for m in g) == sorted(params)
    reps = objective.representations
    feature = jax.eval_shape(reps["generator_ab"].fn, params, {}, sample_batch(spec)["images"])
    assert feature.shape == (2, c.objective.generator_widths[-1])


def pictures_the_trainer_saves(monkeypatch, config, dataset, inputs):
    """The grids ``train.write_pictures`` saves for a freshly initialised ``config`` (whose
    objective must ask for the held-out arrays ``inputs``), and the held-out data it drew."""
    objective = make_objective(config, dataset.spec)
    assert objective.picture_inputs == inputs
    params = objective.init(jax.random.key(0), sample_batch(decoded_spec(dataset.spec)))[0]
    saved = {}
    monkeypatch.setattr(train, "save_pictures", lambda _, step, pictures: saved.update(pictures))
    state = types.SimpleNamespace(params=params, batch_stats={}, step=7)
    train.write_pictures(objective, state, dataset, "unused", seed=0)
    assert set(saved) == {"translations_ab", "translations_ba"}
    return saved, dataset.readout_data(1, train.PICTURE_EXAMPLES)


def test_the_trainer_draws_both_translations_from_each_domains_held_out_images(monkeypatch):
    """With ``images_b`` the trainer hands ``pictures`` the held-out B images as well, so the
    B → A grid starts from typeset digits, not from the handwritten ones."""
    c = load_config(os.path.join(REPO, "experiments", "cycle_gan_digits.py"))
    dataset = load_dataset(c.dataset)
    saved, held_out = pictures_the_trainer_saves(monkeypatch, c, dataset, ("images", "images_b"))
    for name, source in (("translations_ab", "images"), ("translations_ba", "images_b")):
        np.testing.assert_array_equal(saved[name][0], held_out.decoded("test", source))


def test_in_label_mode_each_grid_starts_from_its_own_domains_images(monkeypatch):
    """``domains="label"``: one image stream whose ``labels`` say the domain. The trainer hands
    ``pictures`` the held-out labels too, and the A → B grid starts from the images labelled 0,
    the B → A grid from those labelled 1, each in held-out order."""
    c = digits_config(domains="label")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8, 1), np.uint8)
    labels = np.tile(np.asarray([1, 1, 0, 1, 0], np.int32), 8)
    dataset = ArrayDataset.from_arrays(
        "two_domains",
        {"images": images, "labels": labels},
        {"images": images[:20], "labels": labels[:20]},
    )
    saved, held_out = pictures_the_trainer_saves(monkeypatch, c, dataset, ("images", "labels"))
    shown, domain = held_out.decoded("test", "images"), held_out.test["labels"]
    for name, first in (("translations_ab", 0), ("translations_ba", 1)):
        own = shown[domain == first]
        np.testing.assert_array_equal(saved[name][0][: len(own)], own)
        np.testing.assert_array_equal(saved[name][0][len(own) :], shown[domain != first])


def test_bad_settings_are_one_line_errors():
    c = digits_config(identity_weight=5.0)
    spec = {"images": ArraySpec((8, 8, 1), "float32", "images")}
    c.objective.domains = "paired"
    with pytest.raises(UserError, match="objective.domains must be one of"):
        make_objective(c, spec)
    c.objective.domains = "images_b"
    with pytest.raises(UserError, match="needs images named 'images_b'"):
        make_objective(c, spec)
    colour = {**spec, "images_b": ArraySpec((8, 8, 3), "float32", "images")}
    with pytest.raises(UserError, match="identity_weight=0"):
        make_objective(c, colour)
    c.objective.identity_weight = 0.0
    make_objective(c, colour)  # grey ↔ colour without the identity term
