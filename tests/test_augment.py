"""Augmentations: shapes, dtypes, ranges, identities, keys, and vmap = per-example loop."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax.errors import UserError


@pytest.fixture(scope="module")
def rgb():
    from sklearn.datasets import load_sample_images

    photo = load_sample_images().images[0][100:164, 200:264]  # a real 64×64 colour patch
    return jnp.asarray(photo, jnp.float32) / 255.0


@pytest.fixture(scope="module")
def grey(mnist):
    return jnp.asarray(mnist.train_images[0], jnp.float32) / 255.0


OPS = {
    "crop": functools.partial(augment.random_resized_crop, size=24, scale=(0.2, 1.0)),
    "flip": functools.partial(augment.horizontal_flip, prob=1.0),
    "jitter": functools.partial(augment.color_jitter, prob=1.0),
    "grayscale": functools.partial(augment.random_grayscale, prob=1.0),
    "blur": functools.partial(augment.gaussian_blur, prob=1.0),
    "solarize": functools.partial(augment.solarize, prob=1.0),
}
OUTPUT_SIZE = {"crop": 24}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_keeps_shape_dtype_and_range_and_is_deterministic_per_key(name, rgb):
    op = jax.jit(OPS[name])
    out = op(rgb, jax.random.PRNGKey(0))
    size = OUTPUT_SIZE.get(name, 64)
    chex.assert_shape(out, (size, size, 3))
    assert out.dtype == jnp.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    np.testing.assert_array_equal(out, op(rgb, jax.random.PRNGKey(0)))


@pytest.mark.parametrize("name", ["crop", "jitter", "blur"])
def test_random_ops_give_different_outputs_for_different_keys(name, rgb):
    a = OPS[name](rgb, jax.random.PRNGKey(1))
    b = OPS[name](rgb, jax.random.PRNGKey(2))
    assert float(jnp.abs(a - b).max()) > 1e-3


@pytest.mark.parametrize(
    "op",
    [
        functools.partial(augment.horizontal_flip, prob=0.0),
        functools.partial(augment.color_jitter, prob=0.0),
        functools.partial(
            augment.color_jitter, prob=1.0, brightness=0, contrast=0, saturation=0, hue=0
        ),
        functools.partial(augment.random_grayscale, prob=0.0),
        functools.partial(augment.gaussian_blur, prob=0.0),
        functools.partial(augment.solarize, prob=0.0),
    ],
)
def test_zero_probability_or_strength_is_exactly_the_identity(op, rgb):
    np.testing.assert_array_equal(op(rgb, jax.random.PRNGKey(3)), rgb)


def test_full_crop_at_same_size_is_the_identity(rgb):
    out = augment.random_resized_crop(
        rgb, jax.random.PRNGKey(0), size=64, scale=(1, 1), ratio=(1, 1)
    )
    np.testing.assert_allclose(out, rgb, atol=1e-5)


def test_crop_zooms_into_part_of_the_image(rgb):
    # A small-area crop resized to full size shows fewer distinct regions: lower variance of
    # the gradient than the full image would not be guaranteed, but its content comes from a
    # sub-window, so it differs from the full image resized.
    out = augment.random_resized_crop(rgb, jax.random.PRNGKey(0), size=64, scale=(0.1, 0.1))
    assert float(jnp.abs(out - rgb).mean()) > 0.01


def test_flip_mirrors_columns(rgb):
    np.testing.assert_array_equal(
        augment.horizontal_flip(rgb, jax.random.PRNGKey(0), prob=1.0), rgb[:, ::-1]
    )


def test_grayscale_has_equal_channels_and_one_channel_is_untouched(rgb, grey):
    out = augment.random_grayscale(rgb, jax.random.PRNGKey(0), prob=1.0)
    np.testing.assert_allclose(out[..., 0], out[..., 2])
    np.testing.assert_array_equal(
        augment.random_grayscale(grey, jax.random.PRNGKey(0), prob=1.0), grey
    )


def test_hue_shift_round_trips_through_hsv(rgb):
    hue, sat, val = augment._rgb_to_hsv(rgb)
    np.testing.assert_allclose(augment._hsv_to_rgb(hue, sat, val), rgb, atol=1e-5)
    # A full turn of the colour wheel is the identity as well.
    np.testing.assert_allclose(augment._adjust_hue(rgb, 1.0), rgb, atol=1e-5)


def test_blur_smooths_and_keeps_mean(rgb):
    out = augment.gaussian_blur(rgb, jax.random.PRNGKey(0), prob=1.0, sigma=(2.0, 2.0))
    roughness = lambda x: float(jnp.abs(jnp.diff(x, axis=0)).mean())
    assert roughness(out) < 0.8 * roughness(rgb)
    assert float(out.mean()) == pytest.approx(float(rgb.mean()), abs=0.01)


def test_solarize_inverts_bright_pixels():
    image = jnp.array([0.2, 0.5, 0.9]).reshape(1, 3, 1)
    out = augment.solarize(image, jax.random.PRNGKey(0), prob=1.0, threshold=0.5)
    np.testing.assert_allclose(out.ravel(), [0.2, 0.5, 0.1], atol=1e-7)


def test_jitter_works_on_one_channel_images(grey):
    out = augment.color_jitter(grey, jax.random.PRNGKey(0), prob=1.0)
    chex.assert_shape(out, grey.shape)
    assert float(jnp.abs(out - grey).max()) > 1e-3


def test_make_views_two_views_and_multicrop(mnist):
    images = jnp.asarray(mnist.train_images[:8], jnp.float32) / 255.0
    config = augment.default_config()
    config.num_local = 3
    config.local_size = 12
    views = jax.jit(lambda x, k: augment.make_views(x, k, config))(images, jax.random.PRNGKey(0))
    chex.assert_shape(views[:2], (8, 28, 28, 1))
    chex.assert_shape(views[2:], (8, 12, 12, 1))
    assert len(views) == 5
    assert float(jnp.abs(views[0] - views[1]).mean()) > 1e-3


def test_vmapped_pipeline_equals_per_example_loop(mnist):
    images = jnp.asarray(mnist.train_images[:4], jnp.float32) / 255.0
    config = augment.default_config()
    key = jax.random.PRNGKey(7)
    batched = augment.make_views(images, key, config)[1]
    keys = jax.random.split(jax.random.fold_in(key, 1), 4)
    for i in range(4):
        single = augment.augment_view(images[i], keys[i], config, view_index=1)
        np.testing.assert_allclose(batched[i], single, atol=1e-6)


def test_per_view_probabilities(rgb):
    config = augment.default_config()
    with config.ignore_type():  # a scalar setting given per view
        config.blur_prob = (1.0, 0.0)
    config.jitter_prob = 0.0
    config.grayscale_prob = 0.0
    config.flip_prob = 0.0
    config.global_scale = (1.0, 1.0)
    config.ratio = (1.0, 1.0)
    first, second = augment.make_views(rgb[None], jax.random.PRNGKey(0), config)
    np.testing.assert_allclose(second[0], rgb, atol=1e-5)  # no blur on the second view
    assert float(jnp.abs(first[0] - rgb).max()) > 1e-3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("global_scale", (0.0, 1.0), "global_scale must satisfy"),
        ("flip_prob", 1.5, "flip_prob must lie in"),
        ("brightness", -0.1, "brightness must be >= 0"),
        ("hue", 0.7, "hue must lie in"),
    ],
)
def test_bad_settings_are_named(field, value, message):
    config = augment.default_config()
    with config.ignore_type():
        config[field] = value
    with pytest.raises(UserError, match=message):
        augment.make_views(jnp.zeros((1, 8, 8, 1)), jax.random.PRNGKey(0), config)
