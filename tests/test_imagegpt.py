"""ImageGPT-style next-pixel prediction (notes 001 §3.2): the palette, a prediction for pixel i
that has seen only the pixels before it, the loss in nats per pixel, and learning on digits
read out at a middle layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.data.spec import ArraySpec, sample_batch
from ssl_jax.errors import UserError
from ssl_jax.models import build_encoder
from ssl_jax.objectives import make_objective
from ssl_jax.objectives.imagegpt import (
    FIRST_PIXEL_ID,
    START_ID,
    downsample,
    palette_colours,
    quantise,
)
from tests.configs import tiny_config
from tests.learning import learning_config, pretrain

TRANSFORMER = dict(name="token_transformer", dim=32, depth=2, num_heads=2)


def igpt_config(**fields):
    config = tiny_config("imagegpt", **{"resolution": 8, **fields})
    config.model = dict(TRANSFORMER)
    return config


def test_palette_quantises_grey_and_colour_and_maps_back():
    grey = jnp.asarray([[[[0.0], [0.49], [0.51], [1.0]]]])  # [1, 1, 4, 1]
    np.testing.assert_array_equal(np.asarray(quantise(grey, 3)), [[0, 1, 1, 2]])
    rgb = np.random.default_rng(0).random((5, 4, 4, 3)).astype(np.float32)
    ids = quantise(jnp.asarray(rgb), 4)
    assert int(ids.max()) < 64 and ids.shape == (5, 16)
    back = np.asarray(palette_colours(ids, 4, 3)).reshape(rgb.shape)
    assert np.abs(back - rgb).max() <= 1 / 6 + 1e-6  # half a step of 1/3
    images = np.random.default_rng(1).random((2, 28, 28, 1)).astype(np.float32)
    small = np.asarray(downsample(jnp.asarray(images), 14))
    np.testing.assert_allclose(small[:, 3, 5, 0], images[:, 6:8, 10:12, 0].mean((1, 2)), rtol=1e-6)


def test_each_pixel_is_predicted_from_the_pixels_before_it_only():
    spec = {"images": ArraySpec((8, 8, 1), "float32", "images")}
    objective = make_objective(igpt_config(), spec)
    params, batch_stats, state = objective.init(jax.random.key(0), sample_batch(spec, 2))
    images = np.random.default_rng(2).random((2, 8, 8, 1)).astype(np.float32)
    # The token states by position, with pixel 20 (row 2, column 4) changed and not.
    encoder = build_encoder(
        {**TRANSFORMER, "vocab_size": FIRST_PIXEL_ID + 16, "causal": True, "max_length": 64},
        (64,),
    )

    def states(x):
        pixels = quantise(jnp.asarray(x), 16)
        tokens = jnp.concatenate(
            [jnp.full((2, 1), START_ID), pixels[:, :-1] + FIRST_PIXEL_ID], axis=1
        )
        out, _ = encoder.apply({"params": params["encoder"]}, tokens, method="encode_tokens")
        return np.asarray(out)

    changed = images.copy()
    changed[:, 2, 4, 0] = 1.0 - np.round(changed[:, 2, 4, 0])  # a different palette entry
    before, after = states(images), states(changed)
    # Pixel 20 is the input at position 21: the predictions of pixels 0..20 are unchanged,
    # those of the pixels after it see it.
    np.testing.assert_array_equal(before[:, :21], after[:, :21])
    assert np.abs(before[:, 21:] - after[:, 21:]).max() > 1e-4
    value, output = objective.loss(
        params, batch_stats, state, {"images": jnp.asarray(images)}, None, 0, group="m"
    )
    np.testing.assert_allclose(float(output.metrics["bits_per_pixel"]), float(value) / np.log(2))
    assert abs(float(value) - np.log(16)) < 1.0  # near uniform over the palette at init


def test_bad_settings_are_one_line_errors():
    spec = {"images": ArraySpec((28, 28, 1), "float32", "images")}
    with pytest.raises(UserError, match="resolution 8 must divide the 28×28"):
        make_objective(igpt_config(), spec)
    config = igpt_config(resolution=14)
    config.model = {"name": "small_cnn"}
    with pytest.raises(UserError, match="token_transformer"):
        make_objective(config, spec)


def test_imagegpt_learns_on_digits(tmp_path):
    """150 steps of 64 digits (8×8, 16 grey levels: 64-pixel sequences), a 2-block causal
    Transformer of width 32, read out at block 1 (the middle). Measured at seeds 0 / 1
    (trained vs random init): kNN 0.453 vs 0.270 / 0.510 vs 0.313, linear 0.697 vs 0.447 /
    0.710 vs 0.473. The test asks for less than half the smaller kNN gain (+0.183)."""
    config = learning_config(
        "imagegpt", num_steps=150, batch_size=64, model=TRANSFORMER, resolution=8
    )
    trained, random_init = pretrain(config, tmp_path, "middle")["knn"]
    assert trained > random_init + 0.08, (trained, random_init)
