"""Augmentations: shapes, dtypes, ranges, identities, keys, random order, and vmap = loop."""

import colorsys
import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from scipy import ndimage

from ssl_jax import augment
from ssl_jax.errors import UserError

SIDE = 32


@functools.cache
def photo(channels: int = 3) -> jax.Array:
    """A real 32×32 patch of sklearn's sample photo, [32, 32, C] float32 in [0, 1]."""
    from sklearn.datasets import load_sample_images

    rgb = jnp.asarray(load_sample_images().images[0][100:132, 200:232], jnp.float32) / 255.0
    return rgb if channels == 3 else rgb.mean(axis=-1, keepdims=True)


def keys(n: int, seed: int = 0) -> jax.Array:
    return jax.random.split(jax.random.PRNGKey(seed), n)


CROP_SIZE = (24, 40)  # non-square and wider than the input: crops may upsample
OPS = {
    "crop": functools.partial(augment.random_resized_crop, size=CROP_SIZE, scale=(0.2, 1.0)),
    "flip": functools.partial(augment.horizontal_flip, prob=1.0),
    "jitter": functools.partial(augment.color_jitter, prob=1.0),
    "grayscale": functools.partial(augment.random_grayscale, prob=1.0),
    "blur": functools.partial(augment.gaussian_blur, prob=1.0),
    "solarize": functools.partial(augment.solarize, prob=1.0),
}

# Named, so that test ids are the same in every pytest-xdist worker.
IDENTITY_OPS = {
    "flip_prob0": functools.partial(augment.horizontal_flip, prob=0.0),
    "jitter_prob0": functools.partial(augment.color_jitter, prob=0.0),
    "jitter_strength0": functools.partial(
        augment.color_jitter, prob=1.0, brightness=0, contrast=0, saturation=0, hue=0
    ),
    "grayscale_prob0": functools.partial(augment.random_grayscale, prob=0.0),
    "blur_prob0": functools.partial(augment.gaussian_blur, prob=0.0),
    "solarize_prob0": functools.partial(augment.solarize, prob=0.0),
}


class OpInvariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(name=sorted(OPS), channels=(1, 3))
    def test_op_keeps_shape_dtype_and_range_and_is_deterministic_per_key(self, name, channels):
        image = photo(channels)
        op = self.variant(OPS[name])
        out = op(image, jax.random.PRNGKey(0))
        height, width = CROP_SIZE if name == "crop" else (SIDE, SIDE)
        chex.assert_shape(out, (height, width, channels))
        chex.assert_type(out, jnp.float32)
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        np.testing.assert_array_equal(out, op(image, jax.random.PRNGKey(0)))

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(name=sorted(IDENTITY_OPS), channels=(1, 3))
    def test_zero_probability_or_strength_is_exactly_the_identity(self, name, channels):
        image = photo(channels)
        op = self.variant(IDENTITY_OPS[name])
        np.testing.assert_array_equal(op(image, jax.random.PRNGKey(3)), image)


def pairwise_max_gaps(outs):
    """Max |difference| between every two outputs, [n, n], +inf on the diagonal."""
    flat = np.asarray(outs).reshape(len(outs), -1)
    gaps = np.abs(flat[:, None] - flat[None]).max(axis=-1)
    return gaps + np.diag(np.full(len(outs), np.inf))


def test_crops_differ_between_keys():
    outs = jax.jit(jax.vmap(OPS["crop"], in_axes=(None, 0)))(photo(), keys(8))
    assert pairwise_max_gaps(outs).min() > 1e-3


@pytest.mark.parametrize(
    ("op", "continuous"),
    [
        (augment.horizontal_flip, False),
        (augment.color_jitter, True),
        (augment.random_grayscale, False),
        (augment.gaussian_blur, True),
        (augment.solarize, False),
    ],
)
def test_op_is_applied_with_its_probability_and_differs_between_keys(op, continuous):
    outs = jax.jit(jax.vmap(functools.partial(op, prob=0.5), in_axes=(None, 0)))(photo(), keys(200))
    changed = np.asarray(jnp.abs(outs - photo()).max(axis=(1, 2, 3)) > 0)
    assert 0.38 < changed.mean() < 0.62
    if continuous:  # random strengths: no two keys give the same output
        assert pairwise_max_gaps(outs[changed][:8]).min() > 1e-3


# --- Crop ------------------------------------------------------------------------------------


def test_crop_boxes_lie_inside_the_image_with_area_and_ratio_in_range():
    height, width, scale, ratio = 28, 40, (0.08, 1.0), (3 / 4, 4 / 3)
    sample = lambda k: augment.sample_crop_box(k, height, width, scale, ratio)
    top, left, crop_h, crop_w = np.asarray(jax.jit(jax.vmap(sample))(keys(500))).T
    tol = 1e-4
    assert (top >= -tol).all() and (top + crop_h <= height + tol).all()
    assert (left >= -tol).all() and (left + crop_w <= width + tol).all()
    area = crop_h * crop_w / (height * width)
    assert (area >= scale[0] - tol).all() and (area <= scale[1] + tol).all()
    assert (crop_w / crop_h >= ratio[0] - tol).all() and (crop_w / crop_h <= ratio[1] + tol).all()
    # Sizes and positions vary: small and large crops, anywhere in the image.
    assert area.min() < 0.15 and area.max() > 0.85 and top.std() > 2 and left.std() > 2


def test_crop_falls_back_to_the_centred_widest_box_within_ratio():
    # A square image cannot hold a crop of its full area at aspect ratio 2: no try fits.
    box = augment.sample_crop_box(jax.random.PRNGKey(0), 32, 32, scale=(1, 1), ratio=(2, 2))
    np.testing.assert_allclose(box, [8, 0, 16, 32], atol=1e-5)


def test_full_crop_at_the_same_size_is_the_identity():
    out = augment.random_resized_crop(
        photo(), jax.random.PRNGKey(0), size=SIDE, scale=(1, 1), ratio=(1, 1)
    )
    np.testing.assert_allclose(out, photo(), atol=1e-5)


@pytest.mark.parametrize("size", [7, 50])
def test_crop_of_a_constant_image_is_constant(size):
    image = jnp.full((SIDE, SIDE, 3), 0.7)
    out = augment.random_resized_crop(image, jax.random.PRNGKey(1), size=size)
    np.testing.assert_allclose(out, 0.7, atol=1e-5)


def test_crop_of_a_ramp_samples_the_crop_box_linearly():
    # Bilinear resampling reproduces a linear ramp exactly, so each output column must hold
    # the ramp's value at the input coordinate the box maps it to.
    width, out_w = 40, 64
    ramp = jnp.broadcast_to(jnp.arange(width, dtype=jnp.float32) / (width - 1), (30, width))
    key = jax.random.PRNGKey(5)
    out = augment.random_resized_crop(ramp[..., None], key, size=(16, out_w), scale=(0.2, 0.5))
    _, left, _, crop_w = augment.sample_crop_box(key, 30, width, (0.2, 0.5), (3 / 4, 4 / 3))
    # Output pixel o's centre o + 1/2 comes from input coordinate c; pixel i's centre is i + 1/2.
    coordinate = left + (np.arange(out_w) + 0.5) * crop_w / out_w
    inside = (coordinate >= 0.5) & (coordinate <= width - 0.5)
    expected = (coordinate - 0.5) / (width - 1)
    np.testing.assert_allclose(out[:, inside, 0], np.tile(expected[inside], (16, 1)), atol=1e-4)


# --- Flip, grayscale, solarize ---------------------------------------------------------------


def test_flip_mirrors_columns():
    np.testing.assert_array_equal(
        augment.horizontal_flip(photo(), jax.random.PRNGKey(0), prob=1.0), photo()[:, ::-1]
    )


def test_grayscale_gives_the_luma_in_every_channel_and_leaves_one_channel_alone():
    out = augment.random_grayscale(photo(), jax.random.PRNGKey(0), prob=1.0)
    luma = photo() @ jnp.array([0.299, 0.587, 0.114])
    for channel in range(3):
        np.testing.assert_allclose(out[..., channel], luma, atol=1e-6)
    grey = photo(channels=1)
    np.testing.assert_array_equal(
        augment.random_grayscale(grey, jax.random.PRNGKey(0), prob=1), grey
    )


def test_solarize_inverts_pixels_at_or_above_the_threshold():
    image = jnp.array([0.2, 0.5, 0.9]).reshape(1, 3, 1)
    out = augment.solarize(image, jax.random.PRNGKey(0), prob=1.0, threshold=0.5)
    np.testing.assert_allclose(out.ravel(), [0.2, 0.5, 0.1], atol=1e-7)


# --- Colour jitter ---------------------------------------------------------------------------


def test_rgb_to_hsv_matches_colorsys_and_round_trips():
    pixels = np.random.default_rng(0).random((200, 3), np.float32)
    pixels[:3] = [[0.0, 0.0, 0.0], [0.4, 0.4, 0.4], [1.0, 0.0, 0.5]]  # black, grey, red sector < 0
    hue, sat, val = augment.rgb_to_hsv(jnp.asarray(pixels))
    expected = np.array([colorsys.rgb_to_hsv(*p) for p in pixels.astype(np.float64)])
    np.testing.assert_allclose(np.stack([hue, sat, val], -1), expected, atol=1e-5)
    np.testing.assert_allclose(augment.hsv_to_rgb(hue, sat, val), pixels, atol=1e-5)


def test_hue_shift_turns_the_colour_wheel():
    red = jnp.array([[[1.0, 0.0, 0.0]]])
    np.testing.assert_allclose(augment.adjust_hue(red, 1 / 3), [[[0.0, 1.0, 0.0]]], atol=1e-5)
    np.testing.assert_allclose(augment.adjust_hue(red, -1 / 3), [[[0.0, 0.0, 1.0]]], atol=1e-5)
    np.testing.assert_allclose(augment.adjust_hue(photo(), 1.0), photo(), atol=1e-5)


def test_blend_ops_reach_their_references_at_factor_zero():
    image = photo()
    luma = image @ jnp.array([0.299, 0.587, 0.114])
    np.testing.assert_array_equal(augment.adjust_brightness(image, 0.0), 0.0)
    np.testing.assert_allclose(augment.adjust_contrast(image, 0.0), luma.mean(), atol=1e-6)
    np.testing.assert_allclose(
        augment.adjust_saturation(image, 0.0),
        jnp.broadcast_to(luma[..., None], image.shape),
        atol=1e-6,
    )
    for adjust in (augment.adjust_brightness, augment.adjust_contrast, augment.adjust_saturation):
        np.testing.assert_allclose(adjust(image, 1.0), image, atol=1e-6)


def test_jitter_order_is_a_uniform_random_permutation_of_the_four_ops():
    strengths, hue = (0.4, 0.4, 0.2), 0.1
    sample = jax.jit(jax.vmap(lambda k: augment.sample_jitter(k, strengths, hue)))
    params = jax.tree.map(np.asarray, sample(keys(720)))
    # The full order: the blend order with hue (3) inserted at its position.
    orders = [
        tuple(np.insert(order, position, 3))
        for order, position in zip(params["order"], params["hue_position"], strict=True)
    ]
    counts = {perm: orders.count(perm) for perm in itertools.permutations(range(4))}
    assert min(counts.values()) >= 12  # 30 expected for each of the 24 orders
    factors = np.asarray(params["factors"])
    assert (factors >= 0.6).all() and (factors[:, :2] <= 1.4).all() and (factors[:, 2] >= 0.8).all()
    assert (np.abs(params["hue_shift"]) <= hue).all() and np.ptp(params["hue_shift"]) > 0.15


def test_jitter_applies_its_ops_in_the_sampled_order():
    image = photo()
    ops = [augment.adjust_brightness, augment.adjust_contrast]
    params = dict(order=jnp.array([1, 0]), factors=jnp.array([1.3, 0.5]), hue_shift=0.2)
    jitter = lambda position: augment.apply_jitter(
        image, dict(params, hue_position=jnp.array(position)), ops, use_hue=True
    )
    contrast = lambda x: augment.adjust_contrast(x, 0.5)
    brightness = lambda x: augment.adjust_brightness(x, 1.3)
    hue = lambda x: augment.adjust_hue(x, 0.2)
    np.testing.assert_allclose(jitter(0), brightness(contrast(hue(image))), atol=1e-6)
    np.testing.assert_allclose(jitter(1), brightness(hue(contrast(image))), atol=1e-6)
    np.testing.assert_allclose(jitter(2), hue(brightness(contrast(image))), atol=1e-6)
    assert float(jnp.abs(jitter(0) - jitter(1)).max()) > 5e-3  # the order matters


def test_jitter_on_one_channel_changes_brightness_and_contrast_and_skips_colour():
    grey = photo(channels=1)
    out = augment.color_jitter(grey, jax.random.PRNGKey(0), prob=1.0)
    chex.assert_shape(out, grey.shape)
    assert float(jnp.abs(out - grey).max()) > 1e-2
    colour_only = augment.color_jitter(
        grey, jax.random.PRNGKey(0), prob=1.0, brightness=0, contrast=0, saturation=0.5, hue=0.3
    )
    np.testing.assert_array_equal(colour_only, grey)


# --- Blur ------------------------------------------------------------------------------------


def test_blur_kernel_is_about_a_tenth_of_the_image_and_odd():
    assert augment.blur_kernel_size(28, 28) == 3
    assert augment.blur_kernel_size(224, 224) == 23
    assert augment.blur_kernel_size(96, 64) == 7


def test_blur_matches_scipy_gaussian_filter_with_reflect_padding():
    image = np.random.default_rng(1).random((SIDE, SIDE, 3), np.float32)
    out = augment.gaussian_blur(jnp.asarray(image), jax.random.PRNGKey(0), prob=1, sigma=(1.5, 1.5))
    radius = augment.blur_kernel_size(SIDE, SIDE) // 2
    # numpy's "reflect" (edge not repeated) is scipy's "mirror".
    expected = ndimage.gaussian_filter(
        image, (1.5, 1.5, 0), mode="mirror", radius=(radius, radius, 0)
    )
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_blur_smooths_and_keeps_constant_images_and_tiny_sigma_is_identity():
    blur = lambda image, sigma: augment.gaussian_blur(
        image, jax.random.PRNGKey(0), prob=1.0, sigma=(sigma, sigma)
    )
    roughness = lambda x: float(jnp.abs(jnp.diff(x, axis=0)).mean())
    assert roughness(blur(photo(), 2.0)) < 0.8 * roughness(photo())
    np.testing.assert_allclose(blur(jnp.full((9, 9, 1), 0.3), 2.0), 0.3, atol=1e-6)
    np.testing.assert_allclose(blur(photo(), 0.01), photo(), atol=1e-6)


# --- The composed pipeline -------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_batch(mnist):
    return jnp.asarray(mnist.train_images[:8], jnp.float32) / 255.0


@pytest.fixture(scope="module")
def multicrop_config():
    """The SimCLR defaults plus 2 local 12×12 views."""
    config = augment.default_config()
    config.num_local = 2
    return config


@pytest.fixture(scope="module")
def multicrop_views(multicrop_config):
    return jax.jit(lambda images, key: augment.make_views(images, key, multicrop_config))


def test_make_views_under_jit_gives_global_then_local_views(mnist_batch, multicrop_views):
    views = multicrop_views(mnist_batch, jax.random.PRNGKey(0))
    assert len(views) == 4
    chex.assert_shape(views[:2], (8, 28, 28, 1))
    chex.assert_shape(views[2:], (8, 12, 12, 1))
    chex.assert_type(views, jnp.float32)
    assert all(float(v.min()) >= 0.0 and float(v.max()) <= 1.0 for v in views)
    # The two views of every image differ.
    assert float(jnp.abs(views[0] - views[1]).max(axis=(1, 2, 3)).min()) > 1e-2


def test_make_views_is_deterministic_per_key(mnist_batch, multicrop_views):
    first = multicrop_views(mnist_batch, jax.random.PRNGKey(4))
    again = multicrop_views(mnist_batch, jax.random.PRNGKey(4))
    other = multicrop_views(mnist_batch, jax.random.PRNGKey(5))
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a, b)
        assert float(jnp.abs(a - c).max()) > 1e-2


def test_vmapped_pipeline_equals_per_example_loop(mnist_batch, multicrop_config, multicrop_views):
    key = jax.random.PRNGKey(7)
    batched = multicrop_views(mnist_batch, key)
    view_keys = jax.random.split(key, len(batched))

    def loop_over_examples(view_index):
        # lax.map runs augment_view on one example at a time, in sequence.
        example_keys = jax.random.split(view_keys[view_index], len(mnist_batch))
        one = lambda args: augment.augment_view(*args, multicrop_config, view_index=view_index)
        return jax.lax.map(one, (mnist_batch, example_keys))

    loop_over_examples = jax.jit(loop_over_examples, static_argnums=0)
    for view_index in (1, 3):  # the second global view and a local one
        np.testing.assert_allclose(batched[view_index], loop_over_examples(view_index), atol=1e-5)


def test_per_view_probabilities_and_local_views_take_the_first():
    config = augment.default_config()
    config.blur_prob = (1.0, 0.0)  # BYOL-style: blur always on view 0, never on view 1
    config.num_local = 1
    config.local_size = SIDE
    for field in ("flip_prob", "jitter_prob", "grayscale_prob"):
        config[field] = 0.0
    for field in ("global_scale", "local_scale", "ratio"):
        config[field] = (1.0, 1.0)
    views = jax.jit(lambda images, key: augment.make_views(images, key, config))
    first, second, local = views(photo()[None], jax.random.PRNGKey(0))
    np.testing.assert_allclose(second[0], photo(), atol=1e-5)
    assert float(jnp.abs(first[0] - photo()).max()) > 1e-2
    assert float(jnp.abs(local[0] - photo()).max()) > 1e-2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("global_scale", (0.0, 1.0), "global_scale must be a pair"),
        ("local_scale", (0.2, 1.5), "local_scale must be a pair"),
        ("ratio", (2.0, 1.0), "ratio must be a pair"),
        ("flip_prob", 1.5, "flip_prob must lie in"),
        ("blur_prob", (1.0, 0.1, 0.5), "blur_prob has 3 values but num_global is 2"),
        ("brightness", -0.1, "brightness must be a number >= 0"),
        ("hue", 0.7, "hue must lie in"),
        ("blur_sigma", (0.0, 2.0), "blur_sigma must be a pair"),
        ("num_global", 0, "num_global must be an int >= 1"),
        ("local_size", 0, "local_size must be"),
        ("global_size", (8, 8, 8), "global_size must be"),
        (
            "blur_probability",
            0.5,
            "unknown aug setting 'blur_probability'. Did you mean 'blur_prob'",
        ),
    ],
)
def test_bad_settings_are_named(field, value, message):
    config = augment.default_config()
    config[field] = value
    with pytest.raises(UserError, match=message):
        augment.make_views(jnp.zeros((1, 8, 8, 1)), jax.random.PRNGKey(0), config)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (jnp.zeros((2, 8, 8, 1), jnp.uint8), "divide uint8 images by 255"),
        (jnp.zeros((2, 8, 8, 2)), "1 .grey. or 3 .RGB. channels, got 2"),
        (jnp.zeros((8, 8, 1)), r"expect images \[B, H, W, C\]"),
    ],
)
def test_bad_images_are_named(images, message):
    with pytest.raises(UserError, match=message):
        augment.make_views(images, jax.random.PRNGKey(0), augment.default_config())


def test_augment_view_refuses_a_view_index_past_the_config():
    with pytest.raises(UserError, match="view_index 2 is out of range"):
        augment.augment_view(photo(), jax.random.PRNGKey(0), augment.default_config(), 2)
