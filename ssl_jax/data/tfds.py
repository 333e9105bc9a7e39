"""TFDS datasets streamed from ArrayRecord files through grain, with TensorFlow never imported.

A config names one as ``tfds:NAME[/CONFIG][:VERSION][:SPLIT]``: ``tfds:cifar10``, ``tfds:stl10``,
``tfds:imagenet2012``, ``tfds:cifar10:train[:90%]``, ``tfds:cifar10:3.0.2:train``. SPLIT is any
TFDS split expression and defaults to ``train``. Records are read by random access with
`tfds.data_source` (the dataset must be prepared in the ``array_record`` file format) and decoded
on the host (TFDS decodes PNG/JPEG with PIL or OpenCV); the fixed-size resize also runs on the
host, inside the grain pipeline, so every batch is a dense uint8 array. Random augmentations run
on the device and are not part of this module.

Batch order, the one rule of `ssl_jax.data.pipeline` for every dataset: the global batch of
step s is the q-th block of ``global_batch`` examples of pass e over the data, (e, q) =
divmod(s, steps_per_epoch), where each pass uses its own permutation
(`ssl_jax.data.pipeline.epoch_order`, seeded from ``seed`` and e) and drops its last incomplete
block; the same examples in the same order as an in-memory dataset of the same size. It
depends only on (seed, step), not on the number of processes; process p reads only its p-th
slice of it, so a run resumed at step s, on any number of hosts, sees the batches an
uninterrupted run sees.

The held-out split for the readout is ``test``, or ``validation`` when there is no ``test`` or
its labels are withheld (ImageNet's are all -1). Labels are the ``label`` feature when it is a
ClassLabel; datasets without one, or whose training split has its labels withheld, are
unlabelled: they pretrain, and the trainer skips the readout.
"""

import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from ssl_jax.data.datasets import ArrayDataset
from ssl_jax.data.pipeline import example_at, on_mesh, steps_per_epoch
from ssl_jax.data.spec import ArraySpec
from ssl_jax.errors import UserError, close_matches

PREFIX = "tfds:"
DEFAULT_TRAIN_SPLIT = "train"
HELDOUT_SPLITS = ("test", "validation")
_VERSION = re.compile(r"(\d+\.\d+\.\d+)(?::(.*))?$", re.DOTALL)


# --- the spec and the files -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
    """A parsed ``tfds:NAME[/CONFIG][:VERSION][:SPLIT]``: the TFDS name (with config and
    version, as `tfds.data_source` takes it) and the training split expression."""

    name: str
    split: str

    @property
    def builder_name(self) -> str:
        """The name without its config and version (``imagenet2012/subset:5.1.0`` →
        ``imagenet2012``)."""
        return self.name.split(":")[0].split("/")[0]


def parse_tfds_spec(spec: str) -> TfdsSpec:
    """``'tfds:cifar10:train[:90%]'`` → TfdsSpec('cifar10', 'train[:90%]'); the prefix is
    optional. A version right after the name (``cifar10:3.0.2``) stays part of the name."""
    body = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
    name, _, rest = body.partition(":")
    version = _VERSION.match(rest)
    if version:
        name, rest = f"{name}:{version.group(1)}", version.group(2) or ""
    if not name or rest.startswith(":"):
        raise UserError(
            f"dataset {spec!r} is not of the form tfds:NAME[:SPLIT] "
            "(e.g. 'tfds:cifar10' or 'tfds:cifar10:train[:90%]')."
        )
    return TfdsSpec(name=name, split=rest or DEFAULT_TRAIN_SPLIT)


def resolve_data_dir(data_dir: str | None) -> str:
    """Where TFDS looks for prepared data: ``data_dir``, else $TFDS_DATA_DIR, else
    ~/tensorflow_datasets (read at call time, so tests and users can set the variable late)."""
    if data_dir:
        return os.path.expanduser(data_dir)
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def prepare_command(spec: TfdsSpec, data_dir: str, needs_manual_download: bool) -> str:
    """The shell command that prepares ``spec`` as ArrayRecord files under ``data_dir``."""
    manual = " --manual_dir=DIR_WITH_THE_DOWNLOADED_FILES" if needs_manual_download else ""
    return (
        f"pip install 'ssl_jax[prepare]' && tfds build {spec.name} --file_format=array_record "
        f"--data_dir={data_dir}{manual}"
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _unreadable_error(spec: TfdsSpec, split: str, data_dir: str, err: Exception) -> UserError:
    """Explains why `tfds.data_source` failed: not prepared, prepared in another file format,
    an unknown split, or (last resort) TFDS's own first line."""
    try:
        builder = tfds.builder(spec.name, data_dir=data_dir)
        prepared = builder.is_prepared()
        file_format = builder.info.file_format if prepared else None
        split_names = sorted(builder.info.splits.keys()) if prepared else []
        manual = builder.MANUAL_DOWNLOAD_INSTRUCTIONS is not None
    except Exception:  # noqa: BLE001 - the builder itself is unreadable; report the first error
        return UserError(
            f"cannot read TFDS dataset {spec.name!r} from {data_dir}: {_first_line(err)}"
        )
    where = f"{data_dir}/{spec.builder_name}/"
    if not prepared:
        manual_note = " after downloading its files by hand (see its TFDS catalog page)"
        return UserError(
            f"TFDS dataset {spec.name!r} is not prepared in {where} (no network is used when "
            f"training); prepare it once with `{prepare_command(spec, data_dir, manual)}`"
            f"{manual_note if manual else ''}, or set TFDS_DATA_DIR to the directory that "
            f"holds {spec.builder_name}/."
        )
    if file_format != tfds.core.FileFormat.ARRAY_RECORD:
        stored_as = getattr(file_format, "value", file_format)
        return UserError(
            f"TFDS dataset {spec.name!r} in {where} is stored as {stored_as}, but "
            f"random access needs array_record; rebuild it with "
            f"`{prepare_command(spec, data_dir, manual)}`."
        )
    if split_names and "Unknown split" in str(err):
        return UserError(
            f"TFDS dataset {spec.name!r} has no split {split!r}; use one of "
            f"{', '.join(split_names)} (slices such as 'train[:90%]' are allowed)."
        )
    return UserError(f"cannot read TFDS dataset {spec.name!r} split {split!r}: {_first_line(err)}")


class _VariantFolderWarnings(logging.Filter):
    """Drops TFDS's "Variant folder … has no dataset_info.json" warnings (an unprepared or
    half-built dataset): the `UserError` that follows says what is missing and how to prepare
    it. Other records, and those of other libraries, pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_tfds = f"{os.sep}tensorflow_datasets{os.sep}" in record.pathname
        return not (from_tfds and str(record.msg).startswith("Variant folder"))


@contextlib.contextmanager
def _without_variant_folder_warnings():
    log, quiet = logging.getLogger("absl"), _VariantFolderWarnings()
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def open_source(spec: TfdsSpec, split: str, data_dir: str | None = None):
    """`tfds.data_source` for one split (random access: ``len(src)``, ``src[i]`` → dict of
    NumPy), never downloading; every failure a user can fix becomes a one-line UserError."""
    with _without_variant_folder_warnings():
        return _open_source(spec, split, resolve_data_dir(data_dir))


def _open_source(spec: TfdsSpec, split: str, data_dir: str):
    try:
        return tfds.data_source(
            spec.name, split=split, data_dir=data_dir, download=False, try_gcs=False
        )
    except tfds.core.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        raise UserError(
            f"unknown TFDS dataset {spec.builder_name!r}."
            f"{close_matches(spec.builder_name, known)} "
            "See https://www.tensorflow.org/datasets/catalog for the names."
        ) from None
    except Exception as err:  # noqa: BLE001 - whatever TFDS raises is explained in one line
        raise _unreadable_error(spec, split, data_dir, err) from None


def choose_heldout_split(split_names, dataset: str, is_labelled=None) -> str:
    """``test``, else ``validation``, of the dataset's ``split_names``.

    ``is_labelled(split) -> bool``, when given, lets a ``test`` split whose labels are withheld
    (ImageNet's are all -1) give way to ``validation``.
    """
    split_names = list(split_names)
    present = [split for split in HELDOUT_SPLITS if split in split_names]
    if not present:
        raise UserError(
            f"TFDS dataset {dataset!r} has no 'test' or 'validation' split (it has "
            f"{', '.join(sorted(split_names))}); name a held-out split explicitly, e.g. "
            "heldout_split='train[90%:]' with training split 'train[:90%]'."
        )
    if len(present) > 1 and is_labelled is not None and not is_labelled(present[0]):
        return present[1]
    return present[0]


def readable_splits(info, parsed, data_dir) -> list[str]:
    """The dataset's split names; when its metadata lists none (a dataset written without
    split info), the held-out candidates that open."""
    names = list(info.splits.keys())
    if names:
        return names
    readable = []
    for split in HELDOUT_SPLITS:
        try:
            open_source(parsed, split, data_dir)
        except UserError:  # open_source's one-line reasons: the split is absent or unreadable
            continue
        readable.append(split)
    return readable


def split_has_labels(source, label_key: str, probes: int = 8) -> bool:
    """Whether a split carries labels: a few evenly spaced examples have a label >= 0 (TFDS
    marks withheld labels with -1)."""
    keys = np.linspace(0, len(source) - 1, num=min(probes, len(source))).astype(int)
    return any(int(source[int(key)][label_key]) >= 0 for key in keys)


# --- host preprocessing (runs inside the grain pipeline) ----------------------------------


def find_image_key(features) -> str:
    """The image feature: ``image`` when present, else the only uint8 feature of rank 3."""
    if "image" in features:
        return "image"
    candidates = [
        key
        for key, feature in features.items()
        if len(feature.shape) == 3 and np.dtype(feature.np_dtype) == np.uint8
    ]
    if len(candidates) != 1:
        raise UserError(
            f"cannot tell which feature holds the images (features: "
            f"{', '.join(features.keys())}); ssl_jax reads an 'image' feature of shape (H, W, C)."
        )
    return candidates[0]


def find_label_key(features) -> str | None:
    """``label`` when it is a ClassLabel (class indices), else None: the data is unlabelled."""
    if "label" in features and isinstance(features["label"], tfds.features.ClassLabel):
        return "label"
    return None


def host_image_shape(feature_shape, image_size: int | None, dataset: str) -> tuple[int, int, int]:
    """Shape of the images handed to the device: ``(image_size, image_size, C)`` when resizing,
    else the feature's own shape, which must then be fixed."""
    if len(feature_shape) != 3 or feature_shape[-1] is None:
        raise UserError(
            f"{dataset}: images have shape {tuple(feature_shape)}; expected (H, W, C) with a "
            "known number of channels."
        )
    if image_size is not None:
        if image_size < 1:
            raise UserError(f"image_size must be a positive integer, got {image_size}.")
        return (image_size, image_size, feature_shape[-1])
    if None in feature_shape[:2]:
        raise UserError(
            f"{dataset}: images vary in size {tuple(feature_shape)}; give an image_size "
            "(e.g. 224) to resize them on the host."
        )
    return tuple(feature_shape)


def resize_and_center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """``image: [h, w, c]`` uint8 → ``[size, size, c]``: the shorter side is scaled to ``size``
    (PIL bilinear, which low-pass filters when shrinking) and the centre is cut out, so the
    aspect ratio is kept."""
    height, width, channels = image.shape
    if (height, width) == (size, size):
        return image
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    resized = np.asarray(pil.resize((new_w, new_h), Image.Resampling.BILINEAR))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[top : top + size, left : left + size].reshape(size, size, channels)


@dataclasses.dataclass(frozen=True)
class HostPreprocess:
    """A decoded TFDS example → ``{'images': uint8 [H, W, C], 'labels'?: int32 []}``.

    A plain picklable object, so grain can ship it to worker processes.
    """

    image_key: str
    label_key: str | None
    image_size: int | None

    def __call__(self, example: dict) -> dict:
        image = np.asarray(example[self.image_key], dtype=np.uint8)
        if image.ndim == 2:
            image = image[..., None]
        if self.image_size is not None:
            image = resize_and_center_crop(image, self.image_size)
        out = {"images": image}
        if self.label_key is not None:
            out["labels"] = np.int32(example[self.label_key])
        return out


# --- batch order ------------------------------------------------------------------------


def global_position(
    local_index: int,
    *,
    num_examples: int,
    global_batch: int,
    process_index: int,
    process_count: int,
) -> int:
    """Position, in the endless shuffled stream, of the ``local_index``-th example this process
    reads. With L = global_batch / process_count, the example is slot ``local_index % L`` of
    step s = ``local_index // L``; that step's global batch is positions
    ``e * n + q * global_batch + [0, global_batch)`` with (e, q) = divmod(s, steps_per_epoch),
    and process p owns slots ``[p * L, (p + 1) * L)`` of it."""
    local_batch = global_batch // process_count
    step, slot = divmod(local_index, local_batch)
    epoch, block = divmod(step, steps_per_epoch(num_examples, global_batch))
    return epoch * num_examples + block * global_batch + process_index * local_batch + slot


def local_train_dataset(
    source,
    preprocess,
    *,
    global_batch: int,
    seed: int,
    process_index: int,
    process_count: int,
) -> grain.MapDataset:
    """The endless grain MapDataset whose element ``step`` is this process's slice of that
    step's global batch: ``{'images': [L, H, W, C], 'labels'?: [L]}``, L = global_batch /
    process_count. Random access, so any step is read directly, without replaying earlier ones.
    """
    num_examples = len(source)
    if global_batch % process_count:
        raise UserError(
            f"batch_size {global_batch} does not split evenly over {process_count} processes; "
            "use a multiple of the process count."
        )
    steps_per_epoch(num_examples, global_batch)  # a clear error when the batch is too large
    # position → record key: the permutation of pass e that in-memory datasets use too.
    record_key = functools.partial(example_at, num_examples=num_examples, seed=seed)
    position = functools.partial(
        global_position,
        num_examples=num_examples,
        global_batch=global_batch,
        process_index=process_index,
        process_count=process_count,
    )
    return (
        grain.MapDataset.range(sys.maxsize)  # this process's examples, one after another
        .map(position)
        .map(record_key)
        .map(functools.partial(read_example, source, preprocess))
        .batch(global_batch // process_count)
    )


def read_example(source, preprocess, record_key: int) -> dict:
    """Record ``record_key`` read (ArrayRecord read + image decode), preprocessed (resize), and
    its ``index`` in the split, as in-memory batches carry it (memory banks key on it)."""
    example = preprocess(source[record_key])
    return {**example, "index": np.int32(record_key)}


def _mark_absl_flags_parsed() -> None:
    """grain's worker processes read absl flags, which a program not started by `absl.app`
    (ssl_jax's command lines use argparse) never parsed; they keep their defaults."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


# --- the dataset ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TfdsDataset:
    """A TFDS dataset read lazily: its training split as grain batches and any split (the
    held-out one by default) as in-memory arrays for the readout. The reading fields are
    defaults of `local_train_batches`, so `train_batches` has the in-memory `Dataset`'s
    signature."""

    tfds_spec: TfdsSpec
    data_dir: str
    train_source: Any  # random-access source of decoded examples
    heldout_split: str
    image_shape: tuple[int, int, int]  # of the host batches: [H, W, C]
    num_classes: int | None  # None: unlabelled, batches carry no 'labels'
    preprocess: HostPreprocess
    worker_count: int = 0  # grain worker processes decoding batches; 0: threads only
    read_threads: int = 4
    prefetch_batches: int = 4

    @property
    def has_labels(self) -> bool:
        return self.num_classes is not None

    @property
    def spec(self) -> dict[str, ArraySpec]:
        """``images`` uint8 [H, W, C], and ``labels`` when the data is labelled."""
        spec = {"images": ArraySpec(tuple(self.image_shape), "uint8", "images")}
        if self.num_classes is not None:
            spec["labels"] = ArraySpec((), "int32", "label", num_values=self.num_classes)
        return spec

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.tfds_spec.name}:{self.tfds_spec.split}"

    @property
    def num_train_examples(self) -> int:
        return len(self.train_source)

    def train_dataset(
        self,
        global_batch: int,
        seed: int,
        *,
        process_index: int | None = None,
        process_count: int | None = None,
    ) -> grain.MapDataset:
        """``ds[step]`` is this process's slice of the global batch of ``step`` (see
        `local_train_dataset`); the process defaults to this JAX process."""
        return local_train_dataset(
            self.train_source,
            self.preprocess,
            global_batch=global_batch,
            seed=seed,
            process_index=jax.process_index() if process_index is None else process_index,
            process_count=jax.process_count() if process_count is None else process_count,
        )

    def train_batches(self, global_batch: int, seed: int, start_step: int, sharding):
        """Yields ``(step, batch)`` from ``start_step`` on, ``batch`` on the mesh: this process
        reads only its slice and the global array is assembled there."""
        return on_mesh(
            self.local_train_batches(global_batch, seed, start_step), sharding, self.spec
        )

    def local_train_batches(
        self,
        global_batch: int,
        seed: int,
        start_step: int = 0,
        *,
        process_index: int | None = None,
        process_count: int | None = None,
        worker_count: int | None = None,
        read_threads: int | None = None,
        prefetch_batches: int | None = None,
    ) -> Iterator[tuple[int, dict]]:
        """Yields ``(step, local_batch)`` from ``start_step`` on, forever: ``local_batch`` is
        NumPy ``{'images': uint8 [L, H, W, C], 'labels'?: int32 [L], 'index': int32 [L]}``,
        this process's slice of the global batch (place it on the mesh with
        `ssl_jax.data.pipeline.device_batch`).

        Batches are read ahead by ``read_threads`` threads into a buffer of
        ``prefetch_batches``; with ``worker_count > 0`` that work moves to that many worker
        processes (each takes every worker_count-th step), which keeps decoding off the
        trainer's GIL. The order is the same either way. All three default to the dataset's own.
        """
        worker_count = self.worker_count if worker_count is None else worker_count
        read_threads = self.read_threads if read_threads is None else read_threads
        prefetch_batches = self.prefetch_batches if prefetch_batches is None else prefetch_batches
        dataset = self.train_dataset(
            global_batch, seed, process_index=process_index, process_count=process_count
        )
        read_options = grain.ReadOptions(
            num_threads=read_threads, prefetch_buffer_size=prefetch_batches
        )
        stream = dataset[start_step:].to_iter_dataset(read_options)
        if worker_count > 0:
            _mark_absl_flags_parsed()
            stream = stream.mp_prefetch(
                grain.MultiprocessingOptions(
                    num_workers=worker_count, per_worker_buffer_size=prefetch_batches
                )
            )
        iterator = iter(stream)
        try:
            yield from zip(itertools.count(start_step), iterator, strict=False)
        finally:
            if hasattr(iterator, "close"):  # stops worker processes
                iterator.close()

    def eval_arrays(
        self, split: str | None = None, max_examples: int | None = None, read_threads: int = 8
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The first ``max_examples`` (all by default) examples of ``split`` (the held-out
        split by default) in file order, preprocessed like the training batches:
        ``images: uint8 [N, H, W, C]``, ``labels: int32 [N]`` or None when unlabelled."""
        split = self.heldout_split if split is None else split
        source = open_source(self.tfds_spec, split, self.data_dir)
        count = len(source) if max_examples is None else min(max_examples, len(source))
        if count == 0:
            raise UserError(f"{self.tfds_spec.name!r} split {split!r} holds no examples.")
        chunks = list(
            grain.MapDataset.source(source)[:count]
            .map(self.preprocess)
            .batch(256)
            .to_iter_dataset(
                # grain warns when fewer batches are buffered than threads read
                grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=read_threads)
            )
        )
        images = np.concatenate([chunk["images"] for chunk in chunks])
        if self.preprocess.label_key is None:
            return images, None
        return images, np.concatenate([chunk["labels"] for chunk in chunks])

    def readout_data(self, max_train: int, max_heldout: int) -> ArrayDataset:
        """The first ``max_train`` examples of the training split and ``max_heldout`` of the
        held-out one, in file order, in memory. TFDS shuffles examples when it writes the files,
        so a prefix is a fair sample. Examples whose label is withheld (-1, e.g. STL-10's
        ``unlabelled`` part of ``train+unlabelled``) are left out of the training part."""
        train_images, train_labels = self.eval_arrays(self.tfds_spec.split, max_train)
        test_images, test_labels = self.eval_arrays(None, max_heldout)
        if train_labels is not None:
            labelled = train_labels >= 0
            train_images, train_labels = train_images[labelled], train_labels[labelled]
        train, test = {"images": train_images}, {"images": test_images}
        if train_labels is not None:
            train["labels"], test["labels"] = train_labels, test_labels
        return ArrayDataset(self.name, train, test, self.spec)

    def __repr__(self) -> str:
        labels = f"{self.num_classes} classes" if self.num_classes else "no labels"
        return (
            f"TfdsDataset({self.name!r}, train={self.num_train_examples}, "
            f"heldout={self.heldout_split!r}, image_shape={self.image_shape}, {labels})"
        )


def load_tfds(
    spec: str,
    image_size: int | None = None,
    data_dir: str | None = None,
    heldout_split: str | None = None,
    worker_count: int = 0,
    read_threads: int = 4,
    prefetch_batches: int = 4,
) -> TfdsDataset:
    """Opens ``tfds:NAME[/CONFIG][:VERSION][:SPLIT]`` prepared as ArrayRecord under
    ``data_dir`` ($TFDS_DATA_DIR, ~/tensorflow_datasets by default). ``image_size`` resizes
    every image to ``image_size × image_size`` on the host (needed when sizes vary);
    ``heldout_split`` overrides the default held-out split (``test``, else ``validation``).
    0 and "" mean the default too, as the config writes them. The reading options are the
    defaults of `TfdsDataset.local_train_batches`.

    A training split whose labels are withheld (all -1, like STL-10's ``unlabelled``) is
    read as unlabelled."""
    image_size = image_size or None  # the config writes "not set" as 0 and ""
    heldout_split = heldout_split or None
    parsed = parse_tfds_spec(spec)
    data_dir = resolve_data_dir(data_dir)
    source = open_source(parsed, parsed.split, data_dir)
    info = source.dataset_info
    features = info.features
    image_key, label_key = find_image_key(features), find_label_key(features)
    if len(source) == 0:
        raise UserError(f"{parsed.name!r} split {parsed.split!r} holds no examples.")
    if label_key is not None and not split_has_labels(source, label_key):
        label_key = None
    if heldout_split is None:
        is_labelled = None
        if label_key is not None:
            is_labelled = lambda split: split_has_labels(
                open_source(parsed, split, data_dir), label_key
            )
        heldout_split = choose_heldout_split(
            readable_splits(info, parsed, data_dir), parsed.name, is_labelled
        )
    return TfdsDataset(
        tfds_spec=parsed,
        data_dir=data_dir,
        train_source=source,
        heldout_split=heldout_split,
        image_shape=host_image_shape(features[image_key].shape, image_size, parsed.name),
        num_classes=features[label_key].num_classes if label_key else None,
        preprocess=HostPreprocess(image_key=image_key, label_key=label_key, image_size=image_size),
        worker_count=worker_count,
        read_threads=read_threads,
        prefetch_batches=prefetch_batches,
    )
