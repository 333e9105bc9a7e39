"""Encoders: output and layer shapes, parameter counts, batch norm modes, dtypes, bad shapes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.errors import UserError
from ssl_jax.models import build_encoder
from tests.configs import traced_layers


def init_shapes(model, image_shape):
    encoder = build_encoder(model, image_shape)
    variables = jax.eval_shape(
        lambda: encoder.init(jax.random.PRNGKey(0), jnp.zeros((1, *image_shape)), train=False)
    )
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))
    return encoder, variables, count


@pytest.mark.parametrize(
    ("model", "image_shape", "millions"),
    [
        (dict(name="resnet18", stem="cifar"), (32, 32, 3), 11.17),
        (dict(name="resnet34", stem="cifar"), (32, 32, 3), 21.28),
        (dict(name="resnet50", stem="imagenet"), (224, 224, 3), 23.51),
        (dict(name="vit_small", patch_size=16), (224, 224, 3), 21.67),
        (dict(name="vit_tiny", patch_size=16), (224, 224, 3), 5.52),
    ],
)
def test_parameter_counts_match_the_published_architectures(model, image_shape, millions):
    _, _, count = init_shapes(model, image_shape)
    assert count / 1e6 == pytest.approx(millions, abs=0.02)


@pytest.mark.parametrize(
    ("model", "image_shape", "feature_dim", "layer_names"),
    [
        (
            dict(name="resnet18", stem="cifar", width=8),
            (16, 16, 3),
            64,
            ["stem", "stage1", "stage2", "stage3", "stage4", "pool"],
        ),
        (
            dict(name="resnet50", stem="imagenet", width=8),
            (32, 32, 3),
            256,
            ["stem", "stage1", "stage2", "stage3", "stage4", "pool"],
        ),
        (
            dict(name="vit_tiny", patch_size=4, depth=2, dim=32, num_heads=2),
            (16, 16, 3),
            32,
            ["patch_embed", "block1", "block2", "features"],
        ),
        (dict(name="small_cnn", widths=(8, 16)), (8, 8, 1), 64, ["stage1", "stage2", "features"]),
        (dict(name="mlp", hidden_dims=(32, 16)), (8, 8, 1), 16, ["hidden1", "hidden2"]),
        (dict(name="linear", features=5), (8, 8, 1), 5, ["code"]),
    ],
)
def test_features_and_named_layers_in_network_order(model, image_shape, feature_dim, layer_names):
    features, layers, order = traced_layers(build_encoder(model, image_shape), image_shape)
    chex.assert_shape(features, (2, feature_dim))
    assert order == layer_names
    assert all(x.shape[0] == 2 for x in layers.values())


def test_train_mode_updates_batch_stats_and_eval_mode_is_deterministic():
    encoder = build_encoder(dict(name="resnet18", stem="cifar", width=8), (16, 16, 3))
    images = jax.random.uniform(jax.random.PRNGKey(0), (4, 16, 16, 3))
    variables = encoder.init(jax.random.PRNGKey(1), images, train=False)
    _, updates = encoder.apply(variables, images, train=True, mutable=["batch_stats"])
    before = jax.tree.leaves(variables["batch_stats"])
    after = jax.tree.leaves(updates["batch_stats"])
    assert any(float(jnp.abs(a - b).max()) > 0 for a, b in zip(before, after, strict=True))
    first = encoder.apply(variables, images, train=False)
    np.testing.assert_array_equal(first, encoder.apply(variables, images, train=False))


def test_vit_keep_indices_equals_gathering_the_patch_tokens():
    encoder = build_encoder(
        dict(name="vit_tiny", patch_size=4, depth=1, dim=16, num_heads=2), (16, 16, 3)
    )
    images = jax.random.uniform(jax.random.PRNGKey(0), (2, 16, 16, 3))
    variables = encoder.init(jax.random.PRNGKey(1), images, train=False)
    keep = jnp.array([[0, 5, 9], [15, 2, 3]])
    _, layers = encoder.apply(variables, images, train=False, return_layers=True, keep_indices=keep)
    tokens = encoder.apply(variables, images, method=encoder.embed_patches)
    chex.assert_shape(tokens, (2, 16, 16))
    np.testing.assert_allclose(
        layers["patch_embed"], jnp.take_along_axis(tokens, keep[..., None], 1), rtol=1e-6
    )
    chex.assert_shape(layers["block1"], (2, 4, 16))  # CLS + 3 kept patches


def test_bfloat16_compute_keeps_float32_params():
    encoder = build_encoder(
        dict(name="resnet18", stem="cifar", width=8), (16, 16, 3), dtype=jnp.bfloat16
    )
    images = jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32)  # dtypes only: traced abstractly
    variables = jax.eval_shape(lambda x: encoder.init(jax.random.key(0), x, train=False), images)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
    features = jax.eval_shape(lambda v, x: encoder.apply(v, x, train=False), variables, images)
    assert features.dtype == jnp.bfloat16


@pytest.mark.parametrize(
    ("model", "image_shape", "message"),
    [
        (
            dict(name="vit_small", patch_size=16),
            (28, 28, 1),
            "patch_size 16 needs image sides divisible",
        ),
        (dict(name="resnet50", stem="imagenet"), (8, 8, 1), "needs images of at least 32×32"),
        (
            dict(name="small_cnn", widths=(8, 16, 32, 64)),
            (8, 8, 1),
            "needs images of at least 16×16",
        ),
        (dict(name="resnet18", depth=18), (32, 32, 3), "model 'resnet18' has no setting 'depth'"),
    ],
)
def test_models_refuse_what_they_cannot_take(model, image_shape, message):
    with pytest.raises(UserError, match=message):
        build_encoder(model, image_shape)
