"""TFDS datasets with captions: a text feature becomes ``tokens`` for CLIP.

Offline, like tests/test_tfds.py: two tiny ArrayRecord datasets are built here by
GeneratorBasedBuilders that store `tfds.features.Tensor(uint8)` images (no TensorFlow needed),
each image filled with its example id, so a batch says which examples, and so which captions,
it holds. One is shaped like COCO Captions (``captions/text``, one to three captions per
image, an ``id`` text feature that is no caption, no labels, a ``val`` split); the other has
one ``caption`` string and a class label per image. The last tests train CLIP on the first
through `ssl_jax.train`.
"""

import importlib.resources
import json
import os
import sys
from unittest import mock

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ssl_jax import train
from ssl_jax.data import tfds as tfds_reader
from ssl_jax.data.captions import UNK_ID, tokenize
from ssl_jax.data.spec import PAD_ID
from ssl_jax.data.tfds import choose_caption, load_tfds
from ssl_jax.errors import UserError
from tests.configs import tiny_config
from tests.test_cli_and_checkpoints import error_line, final_params, write_config
from tests.test_tfds import spy_on_tensorflow_imports

NUM_TRAIN, NUM_VAL, NUM_CLASSES = 24, 8, 4
IMAGE_SHAPE = (6, 5, 3)
ANIMALS = ("cat", "dog", "owl")
TEXT_LENGTH = 8
TEXT_MODEL = dict(
    name="token_transformer", dim=16, depth=1, num_heads=2, pool="mean", max_length=TEXT_LENGTH
)
COCO_LIKE = "ssl_jax_tiny_coco_like"


def captions_of(i: int) -> list[str]:
    """The captions of example ``i``: 1 + i % 3 of them; held-out ones (ids from NUM_TRAIN on)
    use the word "unseen", which no training caption has."""
    extra = "unseen " if i >= NUM_TRAIN else ""
    return [f"A {extra}{ANIMALS[j]} in picture {i}." for j in range(1 + i % 3)]


class SslJaxTinyCocoLike(tfds.core.GeneratorBasedBuilder):
    """24 train + 8 val images with 1-3 captions each (``captions/text``) and an ``id``."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = {
            "image": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8),
            "id": tfds.features.Text(),
            "captions": tfds.features.Sequence({"text": tfds.features.Text()}),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(0, NUM_TRAIN),
            "val": self._generate_examples(NUM_TRAIN, NUM_VAL),
        }

    def _generate_examples(self, first, count):
        for i in range(first, first + count):
            yield (
                i,
                {
                    "image": np.full(IMAGE_SHAPE, i, np.uint8),
                    "id": f"file{i}",
                    "captions": {"text": captions_of(i)},
                },
            )


class SslJaxTinyCaptionLabelled(tfds.core.GeneratorBasedBuilder):
    """24 train + 8 test images, one ``caption`` string each, label = id % 4."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = {
            "image": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8),
            "caption": tfds.features.Text(),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(0, NUM_TRAIN),
            "test": self._generate_examples(NUM_TRAIN, NUM_VAL),
        }

    def _generate_examples(self, first, count):
        for i in range(first, first + count):
            image = np.full(IMAGE_SHAPE, i, np.uint8)
            yield i, {"image": image, "caption": captions_of(i)[0], "label": i % NUM_CLASSES}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tfds_captions"))
    # As in tests/test_tfds.py: TFDS 4.9.10 imports the `importlib_resources` backport when it
    # prepares a builder defined in a package module; the standard library module serves.
    with mock.patch.dict(sys.modules, {"importlib_resources": importlib.resources}):
        for builder in (SslJaxTinyCocoLike, SslJaxTinyCaptionLabelled):
            builder(data_dir=root, file_format="array_record").download_and_prepare()
    return root


@pytest.fixture(scope="module")
def coco_like(data_dir):
    return load_tfds(
        f"tfds:{COCO_LIKE}", data_dir=data_dir, heldout_split="val", text_length=TEXT_LENGTH
    )


def ids(batch) -> list[int]:
    return batch["images"][:, 0, 0, 0].astype(int).tolist()


def words(tokens, vocabulary) -> list[str]:
    """Token ids back to words, padding dropped."""
    return [vocabulary.words[t] for t in tokens if t != PAD_ID]


def caption_number(example_id: int, tokens, vocabulary) -> int:
    """Which of the example's captions ``tokens`` encode (each is cut to TEXT_LENGTH ids)."""
    decoded = words(tokens, vocabulary)
    matches = [
        j
        for j, text in enumerate(captions_of(example_id))
        if tokenize(text)[:TEXT_LENGTH] == decoded
    ]
    assert len(matches) == 1, (example_id, decoded)
    return matches[0]


def test_spec_declares_tokens_of_the_text_length(coco_like):
    spec = coco_like.spec
    assert list(spec) == ["images", "tokens"]  # no labels: COCO-like data is unlabelled
    tokens = spec["tokens"]
    assert (tokens.shape, tokens.dtype, tokens.kind) == ((TEXT_LENGTH,), "int32", "tokens")
    assert tokens.vocabulary is coco_like.vocabulary
    assert tokens.num_values == len(coco_like.vocabulary)
    assert coco_like.vocabulary.words[:2] == ("[PAD]", "[UNK]")
    # The captions, not the `id` text feature, became the tokens.
    assert coco_like.preprocess.text.path == "captions/text"
    assert "file" not in coco_like.vocabulary.words
    assert "tokens='captions/text' → 8 ids" in repr(coco_like)
    default = load_tfds(f"tfds:{COCO_LIKE}", data_dir=coco_like.data_dir, heldout_split="val")
    assert default.spec["tokens"].shape == (77,)  # CLIP's context unless told


def test_training_tokens_decode_to_one_of_the_examples_captions(coco_like):
    vocabulary = coco_like.vocabulary
    ds = coco_like.train_dataset(8, seed=0, process_index=0, process_count=1)
    for step in range(6):  # two passes over the data
        batch = ds[step]
        assert batch["tokens"].shape == (8, TEXT_LENGTH) and batch["tokens"].dtype == np.int32
        for example_id, tokens in zip(ids(batch), batch["tokens"], strict=True):
            caption_number(example_id, tokens, vocabulary)
    # A caption longer than the text length is cut ("a cat in picture 2 3" is 6 ids).
    short = load_tfds(
        f"tfds:{COCO_LIKE}", data_dir=coco_like.data_dir, heldout_split="val", text_length=3
    )
    batch = short.train_dataset(8, seed=0, process_index=0, process_count=1)[0]
    assert batch["tokens"].shape == (8, 3) and (batch["tokens"] != PAD_ID).all()


def test_the_caption_drawn_depends_only_on_seed_epoch_and_index(coco_like, data_dir):
    vocabulary = coco_like.vocabulary

    def drawn(dataset, seed, steps=range(9)):  # 3 steps an epoch: three passes
        ds = dataset.train_dataset(8, seed=seed, process_index=0, process_count=1)
        out = []
        for step in steps:
            batch = ds[step]
            epoch = step // 3
            for example_id, index, tokens in zip(
                ids(batch), batch["index"], batch["tokens"], strict=True
            ):
                out.append((epoch, example_id, caption_number(example_id, tokens, vocabulary)))
                count = len(captions_of(example_id))
                assert out[-1][2] == choose_caption(count, (seed, epoch, int(index)))
        return out

    first = drawn(coco_like, seed=1)
    reloaded = load_tfds(
        f"tfds:{COCO_LIKE}", data_dir=data_dir, heldout_split="val", text_length=TEXT_LENGTH
    )
    assert drawn(reloaded, seed=1) == first  # the same for a seed, load after load
    assert drawn(coco_like, seed=1, steps=[7]) == first[7 * 8 : 8 * 8]  # random access
    # Examples with several captions see more than one of them over the passes.
    seen = {}
    for _, example_id, number in first:
        seen.setdefault(example_id, set()).add(number)
    assert any(len(numbers) > 1 for numbers in seen.values())
    assert all(numbers == {0} for i, numbers in seen.items() if len(captions_of(i)) == 1)
    assert drawn(coco_like, seed=2) != first


def test_vocabulary_is_built_from_the_training_split_once_and_cached(coco_like, data_dir):
    vocabulary = coco_like.vocabulary
    assert "unseen" not in vocabulary.words  # only held-out captions have it
    assert set(vocabulary.words[2:]) == {
        word for i in range(NUM_TRAIN) for text in captions_of(i) for word in tokenize(text)
    }
    # The cache sits next to the prepared data (the version directory's dataset_info.json).
    path = coco_like.vocabulary_file
    assert os.path.isfile(os.path.join(os.path.dirname(path), "dataset_info.json"))
    assert os.path.basename(path).startswith("ssl_jax_vocabulary-captions_text-train-")
    with open(path) as f:
        cached = json.load(f)
    assert cached["split"] == "train" and cached["text_feature"] == "captions/text"
    assert tuple(cached["vocabulary"]["words"]) == vocabulary.words
    # A later load reads the file and builds nothing.
    with mock.patch.object(tfds_reader.captions, "build_vocabulary", side_effect=AssertionError):
        again = load_tfds(f"tfds:{COCO_LIKE}", data_dir=data_dir, heldout_split="val")
    assert again.vocabulary == vocabulary and again.vocabulary_file == path
    # Another training split has its own vocabulary, of its own captions.
    half = load_tfds(f"tfds:{COCO_LIKE}:train[:25%]", data_dir=data_dir, heldout_split="val")
    assert half.vocabulary_file != path and len(half.vocabulary) < len(vocabulary)


def test_heldout_and_readout_arrays_carry_each_images_first_caption(coco_like):
    vocabulary = coco_like.vocabulary
    examples = coco_like.eval_examples()
    assert set(examples) == {"images", "tokens"}
    assert examples["tokens"].shape == (NUM_VAL, TEXT_LENGTH)
    for image, tokens in zip(examples["images"], examples["tokens"], strict=True):
        example_id = int(image[0, 0, 0])
        expected = tokenize(captions_of(example_id)[0])[:TEXT_LENGTH]
        # Held-out words the training captions lack are [UNK].
        assert words(tokens, vocabulary) == [
            w if w in vocabulary.words else "[UNK]" for w in expected
        ]
        assert UNK_ID in tokens
    images, labels = coco_like.eval_arrays()
    assert labels is None and images.shape == (NUM_VAL, *IMAGE_SHAPE)
    data = coco_like.readout_data(max_train=10, max_heldout=5)
    assert data.train["tokens"].shape == (10, TEXT_LENGTH) and not data.has_labels
    assert data.test["tokens"].shape == (5, TEXT_LENGTH) and data.spec == coco_like.spec


def test_a_single_caption_string_and_labels_map_alike(data_dir):
    with spy_on_tensorflow_imports() as spy:
        ds = load_tfds("tfds:ssl_jax_tiny_caption_labelled", data_dir=data_dir, text_length=10)
        batch = ds.train_dataset(8, seed=0, process_index=0, process_count=1)[0]
        data = ds.readout_data(max_train=NUM_TRAIN, max_heldout=NUM_VAL)
    assert spy.attempts == [] and "tensorflow" not in sys.modules
    assert list(ds.spec) == ["images", "tokens", "labels"]
    assert ds.preprocess.text.path == "caption" and not ds.preprocess.text.many
    np.testing.assert_array_equal(batch["labels"], np.array(ids(batch)) % NUM_CLASSES)
    for example_id, tokens in zip(ids(batch), batch["tokens"], strict=True):
        assert words(tokens, ds.vocabulary) == tokenize(captions_of(example_id)[0])
    assert data.train["tokens"].shape == (NUM_TRAIN, 10) and data.test_labels.shape == (NUM_VAL,)
    # Any text feature can be named; here the COCO-like file names.
    ids_as_text = load_tfds(
        f"tfds:{COCO_LIKE}", data_dir=data_dir, heldout_split="val", text_feature="id"
    )
    assert ids_as_text.preprocess.text.path == "id" and "file" in ids_as_text.vocabulary.words


def test_a_text_feature_that_cannot_be_found_is_a_one_line_error(data_dir):
    with pytest.raises(UserError) as caught:
        load_tfds(f"tfds:{COCO_LIKE}", data_dir=data_dir, text_feature="captions/title")
    message = str(caught.value)
    assert "\n" not in message
    assert "has no text feature 'captions/title'" in message
    assert "its text features are captions/text, id" in message
    assert "set data.text_feature to one of them" in message
    no_text = pytest.raises(UserError, match="'label'; it has no text feature.*text_feature")
    with no_text, tfds.testing.mock_data(num_examples=8):
        load_tfds("tfds:mnist", text_feature="label")
    with pytest.raises(UserError, match="text_length must be a positive integer"):
        load_tfds(f"tfds:{COCO_LIKE}", data_dir=data_dir, text_length=-1)


def clip_config(data_dir, **fields):
    """A tiny CLIP run on the COCO-like data: 8×8 images after the host resize, a one-layer
    text tower over 8 ids."""
    config = tiny_config("clip", embed_dim=16, text_model=TEXT_MODEL, augment=False)
    config.dataset = f"tfds:{COCO_LIKE}"
    config.batch_size = 8
    config.data.update(dict(image_size=8, data_dir=data_dir, heldout_split="val"))
    config.data.text_feature = "captions/text"
    config.data.text_length = TEXT_LENGTH
    for key, value in fields.items():
        config[key] = value
    return config


def test_clip_trains_on_captions_from_tfds_and_skips_the_readout(data_dir, tmp_path, capsys):
    config = clip_config(data_dir, num_steps=4, log_every=2, checkpoint_every=4)
    config.readout.enabled = True
    assert train.train(config, str(tmp_path / "run")) == {}
    out = capsys.readouterr().out
    assert "tokens='captions/text' → 8 ids" in out
    assert "readout skipped: the dataset has no labels." in out
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [1, 2, 4]
    assert all(np.isfinite(r["loss"]) for r in records), records
    params, _, step = final_params(str(tmp_path / "run"))
    assert step == 4 and "text_encoder" in params
    embed = params["text_encoder"]["token_embed"]["embedding"]
    vocabulary = load_tfds(f"tfds:{COCO_LIKE}", data_dir=data_dir, heldout_split="val").vocabulary
    assert embed.shape[0] == len(vocabulary)  # the text tower embeds the captions' words
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params))


def test_clip_on_a_dataset_without_captions_stops_with_one_line(tmp_path, capsys):
    # Mock CIFAR-10 has an `id` text feature, which is no caption: no tokens.
    config = write_config(tmp_path, "clip")
    argv = ["--config", config, "--workdir", str(tmp_path / "w"), "--config.dataset=tfds:cifar10"]
    with tfds.testing.mock_data(num_examples=32):  # one batch of tiny_config's 32
        err = error_line(capsys, argv)
    assert "objective 'clip' needs tokens named 'tokens'" in err
    assert "images (images), labels (label)" in err and "--config.dataset" in err
