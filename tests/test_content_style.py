"""Content vs style disentangling (notes 004, 003): instance normalisation and AdaIN by their
definitions, a style image that is never the image itself, the adversarial classifier's two
groups, the probes on the glyphs (content tells the letter, style the font) and on colour
digits (content tells the digit, style the colour)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.data.glyphs import _glyph_arrays
from ssl_jax.data.spec import ArraySpec, sample_batch
from ssl_jax.errors import UserError
from ssl_jax.objectives import make_objective
from ssl_jax.objectives.content_style import (
    AdaIN,
    ContentEncoder,
    StyleEncoder,
    instance_norm,
    same_label_partners,
)
from ssl_jax.train import train
from tests.configs import tiny_config
from tests.learning import learning_config

GLYPHS = {
    "images": ArraySpec((16, 16, 1), "float32", "images"),
    "character": ArraySpec((), "int32", "label", num_values=26),
    "font": ArraySpec((), "int32", "label", num_values=10),
}


def test_instance_norm_and_adain_set_each_channels_statistics():
    h = jax.random.normal(jax.random.key(0), (3, 5, 6, 4)) * 3.0 + 2.0
    normed = np.asarray(instance_norm(h))
    np.testing.assert_allclose(normed.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(normed.std(axis=(1, 2)), 1.0, rtol=1e-3)
    style = jax.random.normal(jax.random.key(1), (3, 8))
    adain = AdaIN()
    params = adain.init(jax.random.key(2), h, style)
    out = np.asarray(adain.apply(params, h, style))
    dense = params["params"]["Dense_0"]
    scale, shift = np.split(np.asarray(style @ dense["kernel"] + dense["bias"]), 2, axis=-1)
    # Each channel's mean is β(s) and its standard deviation |1 + γ(s)|: style is statistics.
    np.testing.assert_allclose(out.mean(axis=(1, 2)), shift, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), np.abs(1 + scale), rtol=2e-3)


def test_a_normalised_input_makes_the_content_code_blind_to_a_colour():
    """With ``normalize_input`` one grey picture in two colours (channels c_k·g, all c_k > 0)
    gives the same content code; without it the first convolution tells them apart."""
    grey = jax.random.uniform(jax.random.key(3), (2, 8, 8, 1))
    colours = jnp.array([[0.9, 0.5, 0.6], [0.5, 0.8, 1.0]])
    red, blue = (grey * c for c in colours)
    gaps = {}
    for normalize in (True, False):
        encoder = ContentEncoder((4, 8), 3, normalize_input=normalize)
        params = encoder.init(jax.random.key(4), red)
        codes = [np.asarray(encoder.apply(params, x)) for x in (red, blue)]
        gaps[normalize] = np.abs(codes[0] - codes[1]).max()
    assert gaps[True] < 2e-3 and gaps[False] > 0.1, gaps


def test_the_style_image_is_another_image_of_the_same_style():
    labels = jnp.asarray([0, 1, 0, 2, 1, 0, 3, 3])
    for seed in range(20):
        partners = np.asarray(same_label_partners(jax.random.key(seed), labels))
        np.testing.assert_array_equal(np.asarray(labels)[partners], np.asarray(labels))
        assert partners[3] == 3  # label 2 has no other example
        others = np.delete(np.arange(8), 3)
        assert (partners[others] != others).all()


def test_each_group_trains_only_its_own_modules():
    objective = make_objective(tiny_config("content_style", widths=(8, 16)), GLYPHS)
    batch = sample_batch(GLYPHS, 6)
    images = jax.random.uniform(jax.random.key(3), (6, 16, 16, 1))
    batch = {**batch, "images": images, "font": jnp.asarray([0, 1, 0, 1, 2, 2])}
    params, batch_stats, state = objective.init(jax.random.key(0), batch)

    def grads(group):
        def loss(p):
            return objective.loss(p, batch_stats, state, batch, jax.random.key(1), 0, group=group)

        return jax.jit(jax.grad(lambda p: loss(p)[0]))(params)

    def norm(tree):
        return sum(float(jnp.abs(x).sum()) for x in jax.tree.leaves(tree))

    classifier_grads, autoencoder_grads = grads("classifier"), grads("autoencoder")
    # The classifier learns the style from a fixed content code ...
    assert norm(classifier_grads["classifier"]) > 0
    assert norm(classifier_grads["content_encoder"]) == 0
    # ... and the content encoder is pushed, through it, toward codes that do not tell it.
    assert norm(autoencoder_grads["content_encoder"]) > 0
    assert objective.param_groups == {
        "autoencoder": ("content_encoder", "style_encoder", "decoder"),
        "classifier": ("classifier",),
    }


def test_a_categorical_style_code_is_one_hot_forward_and_soft_backward():
    """``style_categories`` K: the style encoder gives K logits; the decoder receives a hard
    one-hot sample in training, through which the reconstruction still reaches the style
    encoder (straight-through), and the ``style`` representation is one_hot(argmax)."""
    config = tiny_config("content_style", widths=(8, 16), style_categories=5)
    objective = make_objective(config, GLYPHS)
    images = jax.random.uniform(jax.random.key(3), (6, 16, 16, 1))
    batch = {**sample_batch(GLYPHS, 6), "images": images, "font": jnp.asarray([0, 0, 1, 1, 2, 2])}
    params, batch_stats, state = jax.jit(objective.init)(jax.random.key(0), batch)
    logits = jax.jit(StyleEncoder((8, 16), 5).apply)({"params": params["style_encoder"]}, images)
    code = np.asarray(jax.jit(objective.representations["style"].fn)(params, batch_stats, images))
    np.testing.assert_array_equal(code, np.eye(5)[np.argmax(np.asarray(logits), axis=-1)])

    def reconstruction(p):
        _, out = objective.loss(
            p, batch_stats, state, batch, jax.random.key(1), 0, group="autoencoder"
        )
        return out.metrics["reconstruction"]

    grads = jax.jit(jax.grad(reconstruction))(params)["style_encoder"]
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads)) > 0
    with pytest.raises(UserError, match="style_categories"):
        make_objective(tiny_config("content_style", style_categories=1), GLYPHS)


def test_a_missing_style_label_is_a_one_line_error():
    spec = {"images": GLYPHS["images"], "labels": ArraySpec((), "int32", "label", num_values=3)}
    with pytest.raises(UserError, match="style label 'font'"):
        make_objective(tiny_config("content_style"), spec)


def test_colour_digits_pair_every_digit_with_every_colour_and_the_configs_build():
    from ssl_jax.config import load_config
    from ssl_jax.data import load_dataset
    from ssl_jax.data.colour_digits import COLOURS, colourise
    from ssl_jax.data.datasets import _mnist_subset_arrays
    from ssl_jax.data.spec import decoded_spec
    from tests.configs import REPO

    data = load_dataset("colour_digits")
    assert data.spec["images"] == ArraySpec((28, 28, 3), "uint8", "images")
    assert data.spec["labels"].num_values == data.spec["colour"].num_values == 10
    labels = np.concatenate([data.train["labels"], data.test["labels"]])
    colours = np.concatenate([data.train["colour"], data.test["colour"]])
    assert np.all(np.bincount(labels * 10 + colours) == 50)  # independent labels
    assert np.all(np.bincount(data.test["labels"] * 10 + data.test["colour"]) == 10)
    # Each image is a grey digit times its colour: pixel = round(intensity / 255 · RGB).
    grey = _mnist_subset_arrays()[0][:40]
    picked = np.arange(40) % 10
    rgb = np.asarray([value for _, value in COLOURS], np.float32)[picked][:, None, None, :]
    expected = np.round(grey.astype(np.float32) / 255 * rgb)
    np.testing.assert_array_equal(colourise(grey, picked), expected.astype(np.uint8))
    # In the dataset, an image's channels are one grey picture scaled by its colour.
    images = data.train["images"][:200].astype(np.float32)
    rgb_of = np.asarray([value for _, value in COLOURS], np.float32)[data.train["colour"][:200]]
    bright = rgb_of[:, 0] >= 100  # the intensity read from a bright red channel
    intensity = images[bright, ..., 0] / rgb_of[bright, 0][:, None, None]
    predicted = intensity[..., None] * rgb_of[bright][:, None, None, :]
    assert bright.sum() > 100 and np.abs(predicted - images[bright]).max() <= 2.0
    batch = sample_batch(decoded_spec(data.spec))
    for name, style_outputs in (("", 8), ("_categorical", 16)):  # a vector, or 16 logits
        config = load_config(f"{REPO}/experiments/content_style_colour_digits{name}.py")
        objective = make_objective(config, data.spec)
        params = jax.eval_shape(objective.init, jax.random.key(0), batch)[0]
        assert set(params) == {"content_encoder", "style_encoder", "decoder", "classifier"}
        assert params["style_encoder"]["Dense_0"]["kernel"].shape[-1] == style_outputs


def test_the_shapes3d_config_reads_shape_and_hue_through_tfds_and_builds():
    import tensorflow_datasets as tfds

    from ssl_jax.config import load_config
    from ssl_jax.data import load_dataset
    from ssl_jax.data.spec import decoded_spec
    from tests.configs import REPO

    config = load_config(f"{REPO}/experiments/content_style_shapes3d_tfds.py")
    with tfds.testing.mock_data(num_examples=16):  # 3D Shapes' real features, random values
        data = load_dataset(config.dataset, config.data.to_dict())
        readout = data.readout_data(max_train=8, max_heldout=8)
    assert data.spec["images"] == ArraySpec((32, 32, 3), "uint8", "images")
    assert data.spec["labels"].num_values == 4 and data.spec["hue"].num_values == 10
    assert readout.label_names == ["labels", "hue"] and config.objective.style_label == "hue"
    objective = make_objective(config, data.spec)
    batch = sample_batch(decoded_spec(data.spec))
    params = jax.eval_shape(objective.init, jax.random.key(0), batch)[0]
    assert params["style_encoder"]["Dense_0"]["kernel"].shape[-1] == 16  # 16 categories


def small_images_config(dataset: str, num_steps: int):
    """The learning checks' run: batch 64, widths (16, 32), read out on 1,000 training and 500
    held-out examples with one L2 value."""
    config = learning_config("content_style", num_steps=num_steps, dataset=dataset, batch_size=64)
    config.objective.widths = (16, 32)
    config.readout.max_train_examples = 1000
    config.readout.max_heldout_examples = 500
    config.readout.l2_grid = (1e-2,)
    return config


def test_style_learns_the_font_and_content_drops_it_on_glyphs(tmp_path):
    """300 steps of 64 glyphs halved to 16×16 (widths 16, 32), read out on 1,000 training and
    500 held-out glyphs. Measured in the suite's environment at seeds 0 / 1, trained vs random
    init: style → font kNN 0.234 vs 0.138 / 0.196 vs 0.160; content → font kNN 0.274 vs 0.296
    / 0.222 vs 0.286 (the adversary pushes the font out of the content code); content →
    character linear 0.720 vs 0.706 / 0.742 vs 0.694 (kNN 0.680 vs 0.672 / 0.686 vs 0.650).
    At full size the content code learns the letter more clearly (150 steps, kNN 0.720 vs
    0.664 / 0.732 vs 0.624) at 4× the cost; the full config's figures, both codes on both
    labels, are in docs/disentanglement.md. The test asks for half the smaller gap of each."""
    arrays = _glyph_arrays()
    halved = arrays["images"].reshape(-1, 16, 2, 16, 2, 1).mean(axis=(2, 4), dtype=np.float32)
    path = tmp_path / "glyphs16.npz"
    np.savez(
        path,
        images=np.round(halved).astype(np.uint8),
        character=arrays["character"],
        font=arrays["font"],
    )
    config = small_images_config(f"npz:{path}", num_steps=300)
    scores = train(config, str(tmp_path / "run"))["representations"]
    style_font = scores["style"]["font"]["knn"]
    content_font = scores["content"]["font"]["knn"]
    content_character = scores["content"]["character"]["linear"]
    assert style_font["trained"] > style_font["random_init"] + 0.018, scores
    assert content_font["trained"] < content_font["random_init"] - 0.011, scores
    assert content_character["trained"] > content_character["random_init"] + 0.007, scores


def colour_digit_scores(workdir, seed: int = 0) -> dict:
    """200 steps of 64 colour digits halved to 14×14 (widths 16, 32), read out on 1,000
    training and 500 held-out digits: both codes on both labels."""
    from ssl_jax.data import load_dataset

    data = load_dataset("colour_digits")
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "colour14.npz")
    images = np.concatenate([data.train["images"], data.test["images"]]).astype(np.float32)
    halved = images.reshape(-1, 14, 2, 14, 2, 3).mean(axis=(2, 4))
    np.savez(
        path,
        images=np.round(halved).astype(np.uint8),
        labels=np.concatenate([data.train["labels"], data.test["labels"]]),
        colour=np.concatenate([data.train["colour"], data.test["colour"]]),
    )
    config = small_images_config(f"npz:{path}", num_steps=200)
    config.seed = seed
    config.objective.style_label = "colour"
    config.objective.normalize_input = True
    return train(config, os.path.join(workdir, "run"))["representations"]


# Measured at seeds 0 / 1 with the content encoder normalising its input, as the config does,
# trained vs random init: style → colour kNN 0.948 vs 0.492 / 0.698 vs 0.390; content → colour
# kNN 0.106 / 0.106 and linear 0.214 / 0.232 (chance 0.100; without the input normalisation the
# linear probe read 0.660 at seed 0); content → digit kNN 0.910 vs 0.892 / 0.910 vs 0.900. The
# test asks for about half the smaller gap of each, and for the colour probes of the content
# code to stay within about half their distance to chance of what was measured.
def test_where_the_style_is_a_colour_the_codes_separate(tmp_path):
    """On colour digits the style is a per-channel statistic, which instance normalisation
    takes out of the content code and AdaIN puts back: the style code learns the colour, the
    content code reads the colour near chance by both probes, and it keeps the digit."""
    scores = colour_digit_scores(str(tmp_path))
    style_colour = scores["style"]["colour"]["knn"]
    content_colour = scores["content"]["colour"]
    content_digit = scores["content"]["labels"]["knn"]
    assert style_colour["trained"] > style_colour["random_init"] + 0.15, scores
    assert content_colour["knn"]["trained"] < 0.16, scores
    assert content_colour["linear"]["trained"] < 0.3, scores
    assert content_digit["trained"] > content_digit["random_init"] + 0.005, scores
