"""`tfds:NAME` datasets: ArrayRecord files read by `tfds.data_source`, batched by grain.

Offline: two tiny ArrayRecord datasets are built here by GeneratorBasedBuilders that store
`tfds.features.Tensor(uint8)` images (no TensorFlow needed), and the catalogue datasets
(cifar10, imagenet2012) are exercised through `tfds.testing.mock_data`. Every image of the tiny
datasets is filled with its example id, so a batch says which examples it holds. The last tests
train on them through `ssl_jax.train.main`.
"""

import contextlib
import dataclasses
import importlib.abc
import importlib.resources
import json
import os
import shutil
import sys
import time
from unittest import mock

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import evaluate, train
from ssl_jax.data.spec import ArraySpec
from ssl_jax.data.tfds import (
    TfdsSpec,
    choose_heldout_split,
    load_tfds,
    parse_tfds_spec,
    resize_and_center_crop,
)
from ssl_jax.errors import UserError
from ssl_jax.train import make_mesh
from tests.test_cli_and_checkpoints import error_line, final_params, write_config

NUM_TRAIN, NUM_TEST, NUM_CLASSES = 40, 12, 4
IMAGE_SHAPE = (6, 5, 3)


def _examples(first: int, count: int, labelled: bool):
    for i in range(first, first + count):
        example = {"image": np.full(IMAGE_SHAPE, i, np.uint8)}
        if labelled:
            example["label"] = i % NUM_CLASSES
        yield i, example


class SslJaxTinyLabelled(tfds.core.GeneratorBasedBuilder):
    """40 train + 12 test images, each filled with its id; label = id % 4."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = {
            "image": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(0, NUM_TRAIN),
            "test": self._generate_examples(NUM_TRAIN, NUM_TEST),
        }

    def _generate_examples(self, first, count):
        yield from _examples(first, count, labelled=True)


class SslJaxTinyUnlabelled(tfds.core.GeneratorBasedBuilder):
    """Images only: 40 train + 12 validation, no test split."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = {"image": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8)}
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(0, NUM_TRAIN),
            "validation": self._generate_examples(NUM_TRAIN, NUM_TEST),
        }

    def _generate_examples(self, first, count):
        yield from _examples(first, count, labelled=False)


class SslJaxTinyFactors(tfds.core.GeneratorBasedBuilder):
    """One train split of 40 images, each filled with its id, with two ClassLabel factors (the
    layout of 3D Shapes): label_shape = id % 3, label_hue = id % 5, and a float ``scale``."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = {
            "image": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8),
            "label_shape": tfds.features.ClassLabel(num_classes=3),
            "label_hue": tfds.features.ClassLabel(num_classes=5),
            "scale": tfds.features.Tensor(shape=(), dtype=np.float32),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(NUM_TRAIN):
            image = np.full(IMAGE_SHAPE, i, np.uint8)
            yield i, {"image": image, "label_shape": i % 3, "label_hue": i % 5, "scale": i / 10}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tfds"))
    # Preparing a builder defined in a package module (`tests.test_tfds`) makes TFDS 4.9.10 import
    # the `importlib_resources` backport, which it does not install on Python >= 3.9; the standard
    # library module it backports serves.
    with mock.patch.dict(sys.modules, {"importlib_resources": importlib.resources}):
        for builder in (SslJaxTinyLabelled, SslJaxTinyUnlabelled, SslJaxTinyFactors):
            builder(data_dir=root, file_format="array_record").download_and_prepare()
    return root


@pytest.fixture(scope="module")
def tiny(data_dir):
    return load_tfds("tfds:ssl_jax_tiny_labelled", data_dir=data_dir)


def ids(batch) -> list[int]:
    """The example ids of a batch of the tiny datasets (each image is filled with its id)."""
    return batch["images"][:, 0, 0, 0].astype(int).tolist()


def take(iterator, count: int) -> list:
    return [next(iterator) for _ in range(count)]


class _TensorflowImportSpy(importlib.abc.MetaPathFinder):
    """Records every attempt to import tensorflow (installed or not). Existence probes through
    `importlib.util.find_spec` (etils asks whether TensorFlow is installed) import nothing and
    are not counted."""

    def __init__(self):
        self.attempts = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow" and not _called_from_importlib_util():
            self.attempts.append(name)
        return None


def _called_from_importlib_util() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "importlib.util":
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def spy_on_tensorflow_imports():
    spy = _TensorflowImportSpy()
    sys.meta_path.insert(0, spy)
    try:
        yield spy
    finally:
        sys.meta_path.remove(spy)


def test_parse_tfds_spec_splits_name_version_and_split():
    assert parse_tfds_spec("tfds:cifar10") == TfdsSpec("cifar10", "train")
    assert parse_tfds_spec("tfds:cifar10:train[:90%]") == TfdsSpec("cifar10", "train[:90%]")
    assert parse_tfds_spec("tfds:cifar10:3.0.2:test") == TfdsSpec("cifar10:3.0.2", "test")
    spec = parse_tfds_spec("tfds:imagenet2012/subset:5.1.0")
    assert spec == TfdsSpec("imagenet2012/subset:5.1.0", "train")
    assert spec.builder_name == "imagenet2012"
    with pytest.raises(UserError, match="tfds:NAME"):
        parse_tfds_spec("tfds:")


def test_tiny_dataset_metadata_and_batch_shapes(tiny):
    assert tiny.image_shape == IMAGE_SHAPE
    assert tiny.num_classes == NUM_CLASSES
    assert tiny.num_train_examples == NUM_TRAIN
    assert tiny.heldout_split == "test"
    step, batch = next(tiny.local_train_batches(8, seed=0, process_index=0, process_count=1))
    assert step == 0
    assert batch["images"].shape == (8, *IMAGE_SHAPE) and batch["images"].dtype == np.uint8
    assert batch["labels"].shape == (8,) and batch["labels"].dtype == np.int32
    np.testing.assert_array_equal(batch["labels"], np.array(ids(batch)) % NUM_CLASSES)


def test_resumed_iterator_sees_the_batches_of_an_uninterrupted_run(tiny):
    args = dict(global_batch=8, seed=3, process_index=0, process_count=1)
    uninterrupted = take(tiny.local_train_batches(**args), 9)  # 5 steps per epoch: crosses an epoch
    resumed = take(tiny.local_train_batches(start_step=6, **args), 3)
    assert [step for step, _ in resumed] == [6, 7, 8]
    assert [ids(b) for _, b in resumed] == [ids(b) for _, b in uninterrupted[6:]]
    random_access = tiny.train_dataset(8, 3, process_index=0, process_count=1)
    assert ids(random_access[7]) == ids(uninterrupted[7][1])
    other_seed = take(tiny.local_train_batches(8, seed=4, process_index=0, process_count=1), 1)
    assert ids(other_seed[0][1]) != ids(uninterrupted[0][1])


def test_each_epoch_is_a_fresh_permutation_of_all_examples(tiny):
    ds = tiny.train_dataset(8, seed=0, process_index=0, process_count=1)
    epoch0 = sum((ids(ds[step]) for step in range(5)), [])
    epoch1 = sum((ids(ds[step]) for step in range(5, 10)), [])
    assert sorted(epoch0) == sorted(epoch1) == list(range(NUM_TRAIN))
    assert epoch0 != epoch1


def test_tfds_and_in_memory_datasets_share_one_batch_order(tiny):
    # Each step reads the records at the in-memory rule's indices, across an epoch boundary
    # and for other seeds (each image holds its example id; TFDS shuffled the file order).
    from ssl_jax.data.pipeline import batch_indices

    id_of_record = [int(tiny.train_source[i]["image"][0, 0, 0]) for i in range(NUM_TRAIN)]
    for seed in (0, 5):
        ds = tiny.train_dataset(8, seed=seed, process_index=0, process_count=1)
        for step in (0, 4, 5, 11):
            records = batch_indices(NUM_TRAIN, 8, seed, step)
            assert ids(ds[step]) == [id_of_record[r] for r in records]
            # Each example's index is its record's position in the split, as in memory.
            assert ds[step]["index"].tolist() == list(records)


def test_last_incomplete_batch_of_an_epoch_is_dropped(tiny):
    by_16 = tiny.train_dataset(16, seed=0, process_index=0, process_count=1)  # 40 = 2 × 16 + 8
    by_8 = tiny.train_dataset(8, seed=0, process_index=0, process_count=1)  # 40 = 5 × 8
    assert len(set(ids(by_16[0]) + ids(by_16[1]))) == 32
    assert ids(by_16[2])[:8] == ids(by_8[5])  # both start epoch 1; 8 examples were skipped


class _RecordingSource:
    """A data source that records which record keys were read."""

    def __init__(self, source):
        self.source, self.keys = source, []

    def __len__(self):
        return len(self.source)

    def __getitem__(self, key):
        self.keys.append(int(key))
        return self.source[key]


def test_two_processes_read_disjoint_halves_of_the_global_batch(tiny):
    whole = tiny.train_dataset(8, seed=1, process_index=0, process_count=1)
    for step in (0, 4, 7):
        halves = []
        for process in (0, 1):
            recording = _RecordingSource(tiny.train_source)
            shard = dataclasses.replace(tiny, train_source=recording).train_dataset(
                8, seed=1, process_index=process, process_count=2
            )
            batch = shard[step]
            assert batch["images"].shape[0] == 4
            assert len(recording.keys) == 4  # reads only its own examples
            halves.append(ids(batch))
        assert set(halves[0]).isdisjoint(halves[1])
        assert halves[0] + halves[1] == ids(whole[step])


def test_worker_processes_yield_the_same_batches_as_threads(tiny):
    args = dict(global_batch=8, seed=2, start_step=3, process_index=1, process_count=2)
    threaded = take(tiny.local_train_batches(**args), 4)
    batches = tiny.local_train_batches(worker_count=2, **args)
    in_workers = take(batches, 4)
    batches.close()
    assert [s for s, _ in in_workers] == [3, 4, 5, 6]
    assert [ids(b) for _, b in in_workers] == [ids(b) for _, b in threaded]


def test_image_size_resizes_on_the_host(data_dir):
    ds = load_tfds("tfds:ssl_jax_tiny_labelled", image_size=4, data_dir=data_dir)
    assert ds.image_shape == (4, 4, 3)
    _, batch = next(ds.local_train_batches(8, seed=0, process_index=0, process_count=1))
    assert batch["images"].shape == (8, 4, 4, 3)
    flat = batch["images"].reshape(8, -1)
    np.testing.assert_array_equal(flat, np.repeat(flat[:, :1], flat.shape[1], axis=1))


def test_resize_and_center_crop_keeps_the_centre_of_a_wide_image():
    image = np.zeros((30, 90, 3), np.uint8)  # red | green | blue thirds
    image[:, :30, 0] = image[:, 30:60, 1] = image[:, 60:, 2] = 255
    crop = resize_and_center_crop(image, 10)
    assert crop.shape == (10, 10, 3) and crop.dtype == np.uint8
    assert crop[:, 1:-1, 1].min() > 200 and crop[:, 1:-1, [0, 2]].max() < 50
    gray = resize_and_center_crop(np.full((7, 9, 1), 9, np.uint8), 4)
    assert gray.shape == (4, 4, 1) and np.all(gray == 9)


def test_eval_arrays_reads_the_heldout_split_in_order(tiny):
    images, labels = tiny.eval_arrays()
    assert images.shape == (NUM_TEST, *IMAGE_SHAPE) and labels.dtype == np.int32
    assert sorted(images[:, 0, 0, 0].tolist()) == list(range(NUM_TRAIN, NUM_TRAIN + NUM_TEST))
    np.testing.assert_array_equal(labels, images[:, 0, 0, 0] % NUM_CLASSES)
    first, _ = tiny.eval_arrays(max_examples=5)
    np.testing.assert_array_equal(first, images[:5])


def test_unlabelled_dataset_yields_images_and_their_index_only(data_dir):
    ds = load_tfds("tfds:ssl_jax_tiny_unlabelled", data_dir=data_dir)
    assert ds.num_classes is None and ds.heldout_split == "validation"
    _, batch = next(ds.local_train_batches(8, seed=0, process_index=0, process_count=1))
    assert set(batch) == {"images", "index"}
    images, labels = ds.eval_arrays()
    assert labels is None and images.shape == (NUM_TEST, *IMAGE_SHAPE)


def test_split_spec_selects_part_of_the_training_split(data_dir):
    ds = load_tfds("tfds:ssl_jax_tiny_labelled:train[:50%]", data_dir=data_dir)
    assert ds.num_train_examples == NUM_TRAIN // 2
    assert ds.name == "tfds:ssl_jax_tiny_labelled:train[:50%]"


def test_mock_cifar10_is_read_without_importing_tensorflow():
    with tfds.testing.mock_data(num_examples=24), spy_on_tensorflow_imports() as spy:
        ds = load_tfds("tfds:cifar10")
        batches = take(ds.local_train_batches(8, seed=0, process_index=0, process_count=1), 4)
        images, labels = ds.eval_arrays(max_examples=10)
    assert spy.attempts == [] and "tensorflow" not in sys.modules
    assert ds.image_shape == (32, 32, 3) and ds.num_classes == 10
    for _, batch in batches:
        assert batch["images"].shape == (8, 32, 32, 3) and batch["images"].dtype == np.uint8
        assert batch["labels"].dtype == np.int32
        assert batch["labels"].min() >= 0 and batch["labels"].max() < 10
    assert images.shape == (10, 32, 32, 3) and labels.shape == (10,)


def test_variable_size_images_need_an_image_size():
    with tfds.testing.mock_data(num_examples=16):  # mock imagenet images are 5..50 px a side
        with pytest.raises(UserError, match="vary in size.*image_size"):
            load_tfds("tfds:imagenet2012")
        ds = load_tfds("tfds:imagenet2012", image_size=16)
        _, batch = next(ds.local_train_batches(8, seed=0, process_index=0, process_count=1))
    assert batch["images"].shape == (8, 16, 16, 3) and ds.num_classes == 1000


def test_heldout_is_test_then_validation_skipping_a_test_split_without_labels():
    assert choose_heldout_split(["train", "test", "validation"], "d") == "test"
    assert choose_heldout_split(["train", "validation"], "d") == "validation"
    imagenet_like = lambda split: split != "test"  # test labels withheld
    assert choose_heldout_split(["train", "test", "validation"], "d", imagenet_like) == "validation"
    with pytest.raises(UserError, match="heldout_split"):
        choose_heldout_split(["train"], "d")


def test_unprepared_dataset_names_the_command_that_prepares_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(UserError) as caught:
        load_tfds("tfds:cifar10")
    assert time.perf_counter() - start < 10  # no network wait
    message = str(caught.value)
    assert "\n" not in message
    assert f"tfds build cifar10 --file_format=array_record --data_dir={tmp_path}" in message
    assert "pip install 'ssl_jax[prepare]' && tfds build" in message
    assert "TFDS_DATA_DIR" in message and "not prepared" in message


def test_dataset_stored_as_tfrecord_is_told_to_rebuild_as_array_record(data_dir, tmp_path):
    copy = tmp_path / "ssl_jax_tiny_labelled"
    shutil.copytree(os.path.join(data_dir, "ssl_jax_tiny_labelled"), copy)
    info = copy / "1.0.0" / "dataset_info.json"
    info.write_text(info.read_text().replace('"array_record"', '"tfrecord"'))
    with pytest.raises(UserError, match="stored as tfrecord.*--file_format=array_record"):
        load_tfds("tfds:ssl_jax_tiny_labelled", data_dir=str(tmp_path))


def test_label_features_become_labels_that_batches_and_the_readout_carry(data_dir):
    ds = load_tfds(
        "tfds:ssl_jax_tiny_factors:train[:30]",
        data_dir=data_dir,
        heldout_split="train[30:]",
        label_features=("labels=label_shape", "hue=label_hue"),
    )
    assert ds.num_classes == 3 and ds.spec["hue"] == ArraySpec((), "int32", "label", 5)
    assert "hue: 5 classes" in repr(ds)
    _, batch = next(ds.local_train_batches(8, seed=0, process_index=0, process_count=1))
    assert set(batch) == {"images", "labels", "hue", "index"}
    ids = batch["images"][:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(batch["labels"], ids % 3)
    np.testing.assert_array_equal(batch["hue"], ids % 5)
    data = ds.readout_data(max_train=30, max_heldout=10)
    assert data.label_names == ["labels", "hue"]
    test_ids = data.test["images"][:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(data.test["hue"], test_ids % 5)
    np.testing.assert_array_equal(data.test["labels"], test_ids % 3)
    # A feature read under its own name, written as one string as a command line gives it.
    ds = load_tfds(
        "tfds:ssl_jax_tiny_factors",
        data_dir=data_dir,
        heldout_split="train",
        label_features="label_hue,shape=label_shape",
    )
    assert ds.num_classes is None and {"label_hue", "shape"} <= set(ds.spec)


def test_bad_label_features_are_one_line_errors(data_dir):
    def load(*entries):
        return load_tfds(
            "tfds:ssl_jax_tiny_factors",
            data_dir=data_dir,
            heldout_split="train",
            label_features=entries,
        )

    with pytest.raises(UserError, match="does not have.*Did you mean 'label_hue'"):
        load("label_hues")
    with pytest.raises(UserError, match="'scale', which is not a ClassLabel.*label_hue"):
        load("scale")
    with pytest.raises(UserError, match="the array 'images', which is taken"):
        load("images=label_hue")
    with pytest.raises(UserError, match="the array 'hue', which is taken"):
        load("hue=label_hue", "hue=label_shape")


def test_unknown_dataset_and_split_are_one_line_errors(data_dir):
    with pytest.raises(UserError, match="unknown TFDS dataset 'cifar11'.*'cifar10'"):
        load_tfds("tfds:cifar11", data_dir=data_dir)
    with pytest.raises(UserError, match="no split 'bogus'; use one of test, train"):
        load_tfds("tfds:ssl_jax_tiny_labelled:bogus", data_dir=data_dir)


def test_batch_size_errors_are_user_errors(tiny):
    with pytest.raises(UserError, match="larger than the 40"):
        tiny.train_dataset(64, seed=0, process_index=0, process_count=1)
    with pytest.raises(UserError, match="does not split evenly over 3 processes"):
        tiny.train_dataset(8, seed=0, process_index=0, process_count=3)


# --- through the trainer ------------------------------------------------------------------


def tfds_argv(tmp_path, data_dir, dataset, workdir="run", **fields):
    """``train.main`` arguments for a tiny autoencoder run (the quickest objective to compile)
    on ``tfds:dataset``, 8×8 after the host resize."""
    fields = {"data.image_size": 8, "batch_size": 8, **fields}
    config = write_config(tmp_path, "autoencoder", **fields)
    return [
        "--config",
        config,
        "--workdir",
        str(tmp_path / workdir),
        f"--config.dataset=tfds:{dataset}",
        f"--config.data.data_dir={data_dir}",
    ]


def test_batches_arrive_on_the_mesh_as_the_process_slices(tiny):
    sharding = NamedSharding(make_mesh(8), P("data"))
    step, batch = next(tiny.train_batches(8, 5, 3, sharding))
    _, local = next(tiny.local_train_batches(8, seed=5, start_step=3))
    assert step == 3 and batch["images"].sharding == sharding
    # Stored as uint8, decoded on the devices.
    np.testing.assert_allclose(jax.device_get(batch["images"]), local["images"] / 255, rtol=1e-6)
    np.testing.assert_array_equal(jax.device_get(batch["labels"]), local["labels"])


def test_readout_data_holds_the_first_examples_of_each_split(tiny):
    data = tiny.readout_data(max_train=24, max_heldout=5)
    assert data.train_images.shape == (24, *IMAGE_SHAPE) and len(data.test_labels) == 5
    np.testing.assert_array_equal(data.train_labels, data.train_images[:, 0, 0, 0] % NUM_CLASSES)
    assert set(data.test_images[:, 0, 0, 0]) <= set(range(NUM_TRAIN, NUM_TRAIN + NUM_TEST))


def test_unlabelled_tfds_run_resumes_bitwise_and_skips_the_readout(tmp_path, data_dir, capsys):
    # 40 examples, batch 8: 5 steps an epoch, so the resumed half crosses an epoch boundary.
    fields = {"num_steps": 8, "checkpoint_every": 4, "readout.enabled": True}
    argv = tfds_argv(tmp_path, data_dir, "ssl_jax_tiny_unlabelled", **fields)
    assert train.main(argv) == 0
    assert "readout skipped: the dataset has no labels." in capsys.readouterr().out
    assert not os.path.exists(os.path.join(argv[3], "readout.json"))
    # The autoencoder's reconstructions of held-out images, read from the TFDS files.
    assert os.path.exists(os.path.join(argv[3], "pictures", "reconstructions_8.png"))
    uninterrupted, _, _ = final_params(argv[3])
    assert train.main([*argv, "--resume_from_step", "4"]) == 0  # a new trainer from step 4
    resumed, _, step = final_params(argv[3])
    assert step == 8
    for a, b in zip(jax.tree.leaves(uninterrupted), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_tfds_readout_embeds_at_most_the_configured_examples(tmp_path, data_dir):
    # The linear probe's validation split needs all 40 training examples for 4 classes; the
    # training-split cap is checked by the test above.
    fields = {"readout.enabled": True, "readout.knn_k": 5, "num_steps": 2}
    argv = tfds_argv(tmp_path, data_dir, "ssl_jax_tiny_labelled", **fields)
    assert train.main([*argv, "--config.readout.max_heldout_examples=8"]) == 0
    with open(os.path.join(argv[3], "readout.json")) as f:
        readout = json.load(f)
    assert readout["settings"]["train_examples"] == NUM_TRAIN
    assert readout["settings"]["held_out_examples"] == 8
    assert set(readout["representations"]["encoder"]["labels"]["knn"]) == {
        "trained",
        "random_init",
        "pixels",
    }
    # The evaluation CLI reads the run's TFDS data as the run did: 8×8, the same caps.
    report = evaluate.evaluate(argv[3], "knn", options={"ks": (5,)})
    assert report["splits"] == {**report["splits"], "train": NUM_TRAIN, "test": 8}
    # Same data, encoder, k and temperature as the run's own readout: the same kNN accuracy.
    assert (
        report["results"]["trained"]["test_top1_by_k"]["5"]
        == readout["representations"]["encoder"]["labels"]["knn"]["trained"]
    )


def test_unprepared_tfds_dataset_stops_the_cli_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty"))
    config = write_config(tmp_path)
    argv = ["--config", config, "--workdir", str(tmp_path / "w"), "--config.dataset=tfds:cifar10"]
    err = error_line(capsys, argv)
    assert "not prepared" in err and "pip install 'ssl_jax[prepare]'" in err
