"""Datasets and the input pipeline."""

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax.data import load_dataset, pipeline
from ssl_jax.errors import UserError
from ssl_jax.train import make_mesh


def test_mnist_subset_split_is_fixed_and_stratified(mnist):
    assert mnist.train_images.shape == (4000, 28, 28, 1) and mnist.train_images.dtype == np.uint8
    assert mnist.test_images.shape == (1000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(mnist.test_labels), [100] * 10)
    again = load_dataset("mnist_subset")
    np.testing.assert_array_equal(again.test_images, mnist.test_images)
    # No image is in both parts.
    train = {x.tobytes() for x in mnist.train_images}
    assert not any(x.tobytes() in train for x in mnist.test_images)


def test_digits_are_rescaled_to_uint8(digits):
    assert digits.train_images.shape == (1497, 8, 8, 1) and len(digits.test_images) == 300
    assert digits.train_images.max() == 255 and digits.num_classes == 10


def test_batch_order_depends_only_on_seed_and_step():
    a = pipeline.batch_indices(100, 32, seed=3, step=5)
    np.testing.assert_array_equal(a, pipeline.batch_indices(100, 32, seed=3, step=5))
    assert not np.array_equal(a, pipeline.batch_indices(100, 32, seed=4, step=5))
    # One epoch (3 full batches of 32 out of 100) visits distinct examples.
    epoch = np.concatenate([pipeline.batch_indices(100, 32, 0, s) for s in range(3)])
    assert len(np.unique(epoch)) == 96


def test_batches_arrive_sharded_over_the_mesh(digits):
    mesh = make_mesh(8)
    sharding = NamedSharding(mesh, P("data"))
    step, batch = next(pipeline.batches(digits, 32, seed=0, start_step=7, sharding=sharding))
    assert step == 7
    assert batch["images"].sharding == sharding and batch["images"].shape == (32, 8, 8, 1)
    assert len(batch["images"].addressable_shards) == 8
    expected = digits.train_images[pipeline.batch_indices(1497, 32, 0, 7)]
    # Stored as uint8, decoded on the devices: float32 in [0, 1].
    assert batch["images"].dtype == np.float32
    np.testing.assert_allclose(jax.device_get(batch["images"]), expected / 255, rtol=1e-6)


def test_float_npz_outside_unit_range_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, images=np.full((10, 4, 4), 2.0, np.float32))
    with pytest.raises(UserError, match=r"float images must lie in \[0, 1\]"):
        load_dataset(f"npz:{path}")


def test_unlabelled_npz_loads_without_labels(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, images=np.random.default_rng(0).random((50, 6, 6, 3), dtype=np.float32))
    ds = load_dataset(f"npz:{path}")
    assert ds.train_labels is None and ds.num_classes is None
    assert len(ds.train_images) == 40 and ds.image_shape == (6, 6, 3)


def test_batch_larger_than_dataset_is_refused():
    with pytest.raises(UserError, match="larger than the 100 training examples"):
        pipeline.batch_indices(100, 128, seed=0, step=0)


def test_readout_data_of_a_class_sorted_split_is_a_sample_not_a_prefix(mnist):
    # The MNIST subset's splits are stored sorted by digit: a 1,000-example prefix of the
    # training split holds 0, 1 and 2 only.
    assert len(np.unique(mnist.train["labels"][:1000])) == 3
    data = mnist.readout_data(1000, 100)
    assert len(data.train["labels"]) == 1000 and len(data.test["labels"]) == 100
    assert np.bincount(data.train["labels"], minlength=10).min() > 60
    again = mnist.readout_data(1000, 100)  # the same sample every time
    np.testing.assert_array_equal(data.train["images"], again.train["images"])
    whole = mnist.readout_data(10**6, 10**6)
    np.testing.assert_array_equal(whole.test["labels"], mnist.test["labels"])
