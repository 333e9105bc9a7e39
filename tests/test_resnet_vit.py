"""ResNet and ViT encoders: shapes, parameter counts, layers, batch norm, masking, dtype, errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.errors import UserError
from ssl_jax.models.resnet import ResNet, ResNet18, ResNet34, ResNet50
from ssl_jax.models.vit import (
    ViT,
    ViTSmall,
    ViTTiny,
    keep_patches,
    patchify,
    resize_position_embedding,
    unpatchify,
)
from tests.configs import traced_layers

# With the default threefry key XLA needs 10-15 s (two busy CPU cores) to compile a tiny
# ResNet's initialisation; an RngBitGenerator key needs ~2 s and feeds the same initialisers.
KEY = jax.random.key(0, impl="unsafe_rbg")


def uniform_images(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).random(shape, dtype=np.float32))


def tiny_vit(**kwargs):
    return ViT(**{"patch_size": 4, "dim": 32, "depth": 2, "num_heads": 2, **kwargs})


def abstract_variables(model, image_shape):
    """Variable shapes of ``model`` on [1, *image_shape] images, without computing anything."""
    images = jnp.zeros((1, *image_shape))
    return jax.eval_shape(lambda: model.init(KEY, images, train=False))


def abstract_features(model, image_shape, batch=2):
    variables = abstract_variables(model, image_shape)
    images = jax.ShapeDtypeStruct((batch, *image_shape), jnp.float32)
    return jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, images)


def init_and_images(model, image_shape, batch=2):
    images = uniform_images((batch, *image_shape))
    return model.init(KEY, images, train=False), images


@pytest.mark.parametrize(
    ("model", "image_shape", "feature_dim"),
    [
        (ResNet18(stem="cifar", width=8), (32, 32, 3), 64),
        (ResNet18(stem="imagenet", width=8), (32, 32, 3), 64),
        (ResNet34(stem="cifar", width=8), (28, 28, 1), 64),
        (ResNet50(stem="cifar", width=8), (32, 32, 3), 256),
        (ResNet50(stem="imagenet", width=8), (64, 64, 3), 256),
        (ViTTiny(patch_size=7), (28, 28, 1), 192),
        (ViTSmall(patch_size=4), (32, 32, 3), 384),
        (tiny_vit(pool="mean"), (16, 16, 3), 32),
    ],
)
def test_each_variant_gives_features_of_its_width(model, image_shape, feature_dim):
    features = abstract_features(model, image_shape)
    assert features.shape == (2, feature_dim)
    assert features.dtype == jnp.float32


@pytest.mark.parametrize(
    ("model", "image_shape", "count"),
    [
        # torchvision's counts without the 1000-way classifier; the CIFAR stem's 3×3×3×64
        # convolution replaces the 7×7×3×64 one (11,176,512 − 9,408 + 1,728).
        (ResNet18(stem="cifar"), (32, 32, 3), 11_168_832),
        (ResNet34(stem="imagenet"), (224, 224, 3), 21_284_672),
        (ResNet50(stem="imagenet"), (224, 224, 3), 23_508_032),
        # timm's counts without the classifier and without a position embedding for the CLS
        # token (ViT-S/16: 22,050,664 − 385,000 − 384).
        (ViTSmall(patch_size=16), (224, 224, 3), 21_665_280),
        (ViTTiny(patch_size=16), (224, 224, 3), 5_524_224),
    ],
)
def test_full_width_parameter_counts_match_the_published_architectures(model, image_shape, count):
    params = abstract_variables(model, image_shape)["params"]
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params)) == count


@pytest.mark.parametrize(
    ("model", "image_shape", "layer_shapes"),
    [
        (
            ResNet18(stem="cifar", width=8),
            (16, 16, 3),
            {
                "stem": (2, 16, 16, 8),
                "stage1": (2, 16, 16, 8),
                "stage2": (2, 8, 8, 16),
                "stage3": (2, 4, 4, 32),
                "stage4": (2, 2, 2, 64),
                "pool": (2, 64),
            },
        ),
        (
            ResNet50(stem="imagenet", width=4),
            (32, 32, 1),
            {
                "stem": (2, 8, 8, 4),
                "stage1": (2, 8, 8, 16),
                "stage2": (2, 4, 4, 32),
                "stage3": (2, 2, 2, 64),
                "stage4": (2, 1, 1, 128),
                "pool": (2, 128),
            },
        ),
        (
            tiny_vit(),
            (16, 12, 3),
            {
                "patch_embed": (2, 12, 32),
                "block1": (2, 13, 32),
                "block2": (2, 13, 32),
                "features": (2, 32),
            },
        ),
    ],
)
def test_layers_are_named_and_ordered_as_in_the_network(model, image_shape, layer_shapes):
    features, layers, order = traced_layers(model, image_shape)
    assert order == list(layer_shapes)  # network order, not sorted
    assert {name: x.shape for name, x in layers.items()} == layer_shapes
    assert features.shape == layers[order[-1]].shape


def test_the_features_are_the_last_layer():
    model = tiny_vit()
    variables, images = init_and_images(model, (16, 12, 3))
    features, layers = jax.jit(lambda v, x: model.apply(v, x, train=False, return_layers=True))(
        variables, images
    )
    np.testing.assert_array_equal(layers["features"], features)


def test_zero_init_residual_makes_every_stage1_block_the_identity_at_init():
    # Stage 1 of ResNet-18 keeps the shape, so each block is relu(x + branch) with x >= 0.
    model = ResNet18(stem="cifar", width=8)
    variables, images = init_and_images(model, (8, 8, 3))
    _, layers = model.apply(variables, images, train=False, return_layers=True)
    np.testing.assert_array_equal(layers["stage1"], layers["stem"])

    plain = ResNet18(stem="cifar", width=8, zero_init_residual=False)
    variables, images = init_and_images(plain, (8, 8, 3))
    _, layers = plain.apply(variables, images, train=False, return_layers=True)
    assert not np.allclose(layers["stage1"], layers["stem"])


def test_train_mode_updates_batch_stats_and_eval_mode_leaves_them_and_the_output_fixed():
    model = ResNet50(stem="cifar", width=4)
    # Jitted: one program per mode, where op-by-op dispatch compiles each of ResNet-50's
    # layers on its own.
    images = uniform_images((4, 8, 8, 3))
    variables = jax.jit(lambda x: model.init(KEY, x, train=False))(images)
    train_apply, eval_apply = (
        jax.jit(lambda v, x, train=train: model.apply(v, x, train=train, mutable=["batch_stats"]))
        for train in (True, False)
    )
    _, updated = train_apply(variables, images)
    before = jax.tree.leaves(variables["batch_stats"])
    after = jax.tree.leaves(updated["batch_stats"])
    assert all(not np.allclose(a, b) for a, b in zip(before, after, strict=True))

    first, unchanged = eval_apply(variables, images)
    chex.assert_trees_all_equal(unchanged["batch_stats"], variables["batch_stats"])
    np.testing.assert_array_equal(first, eval_apply(variables, images)[0])
    # With running statistics an example's features do not depend on the rest of the batch.
    others_changed = images.at[1:].set(uniform_images(images[1:].shape, seed=3))
    again, _ = eval_apply(variables, others_changed)
    np.testing.assert_array_equal(again[0], first[0])
    assert not np.allclose(again[1:], first[1:])


def test_keep_indices_encodes_exactly_the_gathered_patch_tokens():
    model = tiny_vit()
    variables, images = init_and_images(model, (16, 16, 3))
    keep = jnp.array([[0, 5, 9], [15, 2, 3]])
    features, layers = model.apply(
        variables, images, train=False, return_layers=True, keep_indices=keep
    )
    all_tokens = model.apply(variables, images, method="embed_patches")
    chex.assert_shape(all_tokens, (2, 16, 32))
    gathered = jnp.stack([all_tokens[0, keep[0]], all_tokens[1, keep[1]]])
    np.testing.assert_array_equal(layers["patch_embed"], gathered)
    chex.assert_shape(layers["block2"], (2, 4, 32))  # CLS + 3 kept patches
    encoded = model.apply(variables, gathered, method="encode_tokens")
    np.testing.assert_allclose(features, encoded[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model.apply(variables, images, keep, method="encode"), encoded, rtol=1e-5, atol=1e-6
    )


def test_dropped_patches_do_not_influence_the_features():
    model = tiny_vit()
    variables, images = init_and_images(model, (16, 16, 3))
    keep = jnp.array([[0, 1, 4, 5], [10, 11, 14, 15]])  # top-left / bottom-right 8×8
    features = model.apply(variables, images, train=False, keep_indices=keep)
    noise = uniform_images(images.shape, seed=2)
    changed = images.at[0, 8:].set(noise[0, 8:]).at[0, :, 8:].set(noise[0, :, 8:])
    changed = changed.at[1, :8].set(noise[1, :8]).at[1, :, :8].set(noise[1, :, :8])
    np.testing.assert_array_equal(
        model.apply(variables, changed, train=False, keep_indices=keep), features
    )
    assert not np.allclose(
        model.apply(variables, changed, train=False), model.apply(variables, images, train=False)
    )


def test_keeping_all_patches_in_any_order_gives_the_full_image_features():
    # Position embeddings travel with their patches and attention is permutation-equivariant.
    model = tiny_vit()
    variables, images = init_and_images(model, (16, 16, 3))
    rng = np.random.default_rng(0)
    shuffled = jnp.asarray(np.stack([rng.permutation(16), rng.permutation(16)]))
    np.testing.assert_allclose(
        model.apply(variables, images, train=False, keep_indices=shuffled),
        model.apply(variables, images, train=False),
        rtol=1e-4,
        atol=1e-5,
    )


def test_patchify_matches_the_patch_embedding_token_order():
    model = tiny_vit()
    variables, images = init_and_images(model, (16, 12, 3))
    projection = variables["params"]["patch_embed"]["projection"]
    position = variables["params"]["patch_embed"]["position_embedding"]
    expected = (
        patchify(images, 4) @ projection["kernel"].reshape(-1, 32)
        + projection["bias"]
        + position.reshape(-1, 32)
    )
    np.testing.assert_allclose(
        model.apply(variables, images, method="embed_patches"), expected, rtol=1e-5, atol=1e-5
    )
    chex.assert_shape(patchify(images, 4), (2, 12, 48))
    np.testing.assert_array_equal(unpatchify(patchify(images, 4), 4, (4, 3)), images)


def test_keep_patches_gathers_per_example():
    tokens = jnp.arange(2 * 5 * 1).reshape(2, 5, 1)
    np.testing.assert_array_equal(
        keep_patches(tokens, jnp.array([[4, 0], [1, 1]]))[..., 0], [[4, 0], [6, 6]]
    )


def test_vit_takes_other_image_sizes_by_resizing_the_position_embedding():
    model = tiny_vit()
    variables, _ = init_and_images(model, (16, 16, 3))
    local_views = jnp.ones((2, 8, 8, 3))
    features, layers = model.apply(variables, local_views, train=False, return_layers=True)
    chex.assert_shape(layers["patch_embed"], (2, 4, 32))
    chex.assert_tree_all_finite(features)

    constant = jnp.full((4, 4, 3), 0.5)
    np.testing.assert_allclose(resize_position_embedding(constant, (2, 3)), 0.5, rtol=1e-6)
    grid = uniform_images((4, 4, 3))
    assert resize_position_embedding(grid, (4, 4)) is grid


@pytest.mark.parametrize(
    ("model", "image_shape"),
    [(ResNet18(stem="imagenet", width=4), (32, 32, 3)), (tiny_vit(), (16, 16, 3))],
    ids=["resnet", "vit"],
)
def test_bfloat16_compute_gives_bfloat16_activations_and_float32_params(model, image_shape):
    # Dtypes only, so traced abstractly: nothing is compiled or run.
    model = model.clone(dtype=jnp.bfloat16)
    images = jax.ShapeDtypeStruct((2, *image_shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(KEY, x, train=False), images)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
    (_, layers), updated = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=True, return_layers=True, mutable=["batch_stats"]),
        variables,
        images,
    )
    assert all(x.dtype == jnp.bfloat16 for x in layers.values())
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(updated))


@pytest.mark.parametrize(
    ("model", "image_shape", "message"),
    [
        (ViTSmall(patch_size=16), (28, 28, 1), r"patch_size 16 .* got 28×28; .*\(2, 4, 7, 14\)"),
        (tiny_vit(patch_size=5), (16, 16, 3), r"patch_size 5 .* got 16×16"),
        (tiny_vit(), (16, 16), r"\(H, W, C\) images, got shape \(16, 16\)"),
        (tiny_vit(num_heads=3), (16, 16, 3), "dim 32 is not divisible by num_heads 3"),
        (tiny_vit(pool="max"), (16, 16, 3), "unknown vit pool 'max'"),
        (ResNet50(stem="imagenet"), (28, 28, 1), r"imagenet stem needs .* at least 32×32.*cifar"),
        (ResNet18(stem="cifar"), (4, 4, 1), "at least 8×8"),
        (ResNet18(stem="stl"), (32, 32, 3), "unknown resnet stem 'stl'"),
        (ResNet(block="basik"), (32, 32, 3), "unknown resnet block 'basik'"),
    ],
)
def test_check_input_shape_refuses_what_the_model_cannot_take(model, image_shape, message):
    with pytest.raises(UserError, match=message):
        model.check_input_shape(image_shape)


@pytest.mark.parametrize(
    ("model", "image_shape"),
    [
        (ViTSmall(patch_size=7), (28, 28, 1)),
        (ViTTiny(patch_size=4), (32, 32, 3)),
        (ResNet18(stem="cifar"), (8, 8, 1)),
        (ResNet50(stem="imagenet"), (32, 32, 3)),
    ],
)
def test_check_input_shape_accepts_what_the_model_takes(model, image_shape):
    model.check_input_shape(image_shape)


def test_bad_settings_are_user_errors_at_call_time_too():
    with pytest.raises(UserError, match="unknown resnet stem"):
        abstract_features(ResNet18(stem="stl", width=4), (16, 16, 3))
    with pytest.raises(UserError, match="unknown vit pool"):
        abstract_features(tiny_vit(pool="max"), (16, 16, 3))
