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
unlabelled: they pretrain, and the trainer skips the readout. ``label_features`` reads other
ClassLabel features as labels too, each as ``ARRAY=FEATURE`` or ``FEATURE`` (the array named
after the feature): ``("labels=label_shape", "hue=label_object_hue")`` on ``shapes3d`` gives
batches an int32 ``labels`` (the shape) and ``hue``, and the readout probes every
representation on both, as it does the embedded datasets' extra labels (``colour_digits``'s
``colour``). Mapping ``labels`` replaces the ``label`` feature.

Text: a caption feature becomes ``tokens``, int32 [``text_length``] ids (77 by default, the
context of CLIP's text model; set it to the text model's ``max_length``), 0-padded, longer
captions cut. The feature is ``text_feature`` when given (any text feature, nested ones by
their path such as ``captions/text``), else the first of `CAPTION_FEATURES` the dataset has;
other text features (CIFAR-10's ``id``, ImageNet's ``file_name``) are not captions and are
left out. A feature may hold one text per example (``tfds.features.Text``) or a sequence
(COCO's ``captions/text``, about five per image): a training example then takes one of them,
drawn from ``np.random.default_rng([seed, epoch, index])``, so a pass over the data sees each
image with a caption that changes from epoch to epoch yet depends only on (seed, step), like
the batch order; held-out and readout arrays take each image's first caption. Words are
`ssl_jax.data.captions.tokenize`'s (lower-cased ``a``-``z`` runs and single digits) and the
vocabulary is `ssl_jax.data.captions.build_vocabulary` of every caption of the training split
(all of an image's captions, not only those drawn): id 0 pads, id 1 stands for words the
training captions lack. Building it reads the whole training split once (images left
undecoded); it is cached as ``ssl_jax_vocabulary-FEATURE-SPLIT-HASH.json`` in the prepared
dataset's version directory (next to its ``dataset_info.json``) and read from there by later
runs; when that directory is read-only it is rebuilt in memory at each start.
"""

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
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

from ssl_jax.data import captions
from ssl_jax.data.datasets import ArrayDataset
from ssl_jax.data.pipeline import example_at, on_mesh, steps_per_epoch
from ssl_jax.data.spec import ArraySpec, Vocabulary
from ssl_jax.errors import UserError, close_matches

PREFIX = "tfds:"
DEFAULT_TRAIN_SPLIT = "train"
HELDOUT_SPLITS = ("test", "validation")
_VERSION = re.compile(r"(\d+\.\d+\.\d+)(?::(.*))?$", re.DOTALL)
# The text features read as captions when no text_feature is named, in this order.
CAPTION_FEATURES = ("captions/text", "captions", "caption", "text")
DEFAULT_TEXT_LENGTH = 77  # CLIP's text context (ssl_jax.objectives.clip's max_length)
VOCABULARY_FILE = "ssl_jax_vocabulary"
_log = logging.getLogger(__name__)


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


def open_source(spec: TfdsSpec, split: str, data_dir: str | None = None, decoders=None):
    """`tfds.data_source` for one split (random access: ``len(src)``, ``src[i]`` → dict of
    NumPy), never downloading; every failure a user can fix becomes a one-line UserError.
    ``decoders`` are TFDS's (``{"image": tfds.decode.SkipDecoding()}`` leaves images encoded)."""
    with _without_variant_folder_warnings():
        return _open_source(spec, split, resolve_data_dir(data_dir), decoders)


def _open_source(spec: TfdsSpec, split: str, data_dir: str, decoders=None):
    try:
        return tfds.data_source(
            spec.name,
            split=split,
            data_dir=data_dir,
            download=False,
            try_gcs=False,
            decoders=decoders,
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


# Batch arrays that a label feature cannot be named after: the trainer's own.
RESERVED_ARRAYS = ("images", "tokens", "index")


def parse_label_features(entries, features, dataset: str) -> dict[str, str]:
    """``ARRAY=FEATURE`` or ``FEATURE`` entries → {array name: ClassLabel feature}, checked
    against the dataset's ``features``."""
    if isinstance(entries, str):  # "labels=label_shape,hue=label_object_hue" from a command line
        entries = [entry for entry in entries.split(",") if entry]
    class_labels = sorted(
        key for key, feature in features.items() if isinstance(feature, tfds.features.ClassLabel)
    )
    chosen = {}
    for entry in entries:
        array, _, feature = entry.rpartition("=")
        array = array or feature
        if feature not in features:
            raise UserError(
                f"label_features names {feature!r}, which {dataset!r} does not have."
                f"{close_matches(feature, class_labels)} Its ClassLabel features: "
                f"{', '.join(class_labels) or 'none'}."
            )
        if not isinstance(features[feature], tfds.features.ClassLabel):
            raise UserError(
                f"label_features names {feature!r}, which is not a ClassLabel feature of "
                f"{dataset!r} (labels are class indices); its ClassLabel features: "
                f"{', '.join(class_labels) or 'none'}."
            )
        if not array.isidentifier() or array in RESERVED_ARRAYS or array in chosen:
            raise UserError(
                f"label_features entry {entry!r} names the array {array!r}, which is "
                f"{'taken' if array in chosen or array in RESERVED_ARRAYS else 'not a name'}; "
                "write ARRAY=FEATURE with a new identifier, e.g. 'hue=label_object_hue'."
            )
        chosen[array] = feature
    return chosen


@dataclasses.dataclass(frozen=True)
class TextFeature:
    """Where an example keeps its captions: ``path`` into the decoded example (``captions/text``
    is ``example['captions']['text']``), and whether it holds a sequence of texts (``many``)
    or one."""

    path: str
    many: bool

    def texts(self, example: dict) -> list[str]:
        """The example's captions, decoded from UTF-8 (TFDS gives bytes)."""
        value = example
        for part in self.path.split("/"):
            value = value[part]
        values = list(value) if self.many else [value]
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def text_features(features, prefix: str = "", in_sequence: bool = False) -> dict[str, TextFeature]:
    """Every text feature of a FeaturesDict by its path: top-level ``Text``, a ``Sequence`` of
    ``Text``, and ``Text`` inside nested dicts or a ``Sequence`` of dicts (``captions/text``).
    Sequences of sequences are not captions and are skipped."""
    found = {}
    for key, feature in features.items():
        path = f"{prefix}{key}"
        if isinstance(feature, tfds.features.Text):
            found[path] = TextFeature(path, in_sequence)
        elif isinstance(feature, tfds.features.Sequence) and not in_sequence:
            inner = feature.feature
            if isinstance(inner, tfds.features.Text):
                found[path] = TextFeature(path, True)
            elif isinstance(inner, tfds.features.FeaturesDict):
                found.update(text_features(inner, f"{path}/", True))
        elif isinstance(feature, tfds.features.FeaturesDict):
            found.update(text_features(feature, f"{path}/", in_sequence))
    return found


def find_text_feature(features, text_feature: str | None, dataset: str) -> TextFeature | None:
    """The captions: ``text_feature`` when named (it must be a text feature), else the first of
    `CAPTION_FEATURES` present, else None (the dataset yields no ``tokens``)."""
    found = text_features(features)
    if not text_feature:
        return next((found[name] for name in CAPTION_FEATURES if name in found), None)
    if text_feature in found:
        return found[text_feature]
    have = (
        f"its text features are {', '.join(sorted(found))}"
        if found
        else f"it has no text feature (features: {', '.join(features.keys())})"
    )
    raise UserError(
        f"TFDS dataset {dataset!r} has no text feature {text_feature!r}; {have}: set "
        "data.text_feature to one of them (nested ones by path, e.g. 'captions/text'), or "
        "choose a dataset with captions."
    )


def check_text_length(text_length) -> int:
    if isinstance(text_length, bool) or not isinstance(text_length, int) or text_length < 1:
        raise UserError(
            f"data.text_length must be a positive integer (the text model's max_length), got "
            f"{text_length!r}; e.g. --config.data.text_length={DEFAULT_TEXT_LENGTH}."
        )
    return text_length


def vocabulary_path(source, spec: TfdsSpec, text: TextFeature) -> str:
    """The cached vocabulary of ``text`` over the training split ``spec.split``: a JSON file
    in the prepared dataset's version directory, named by the feature and the split (and a
    hash of both, since split expressions such as ``train[:50%]`` are not file names)."""
    key = f"{text.path}\n{spec.split}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9+._-]+", "_", f"{text.path}-{spec.split}").strip("_")
    directory = os.fspath(source.dataset_info.data_dir)
    return os.path.join(directory, f"{VOCABULARY_FILE}-{readable}-{digest}.json")


def training_texts(spec: TfdsSpec, data_dir: str, image_key: str, text: TextFeature):
    """Every caption of the training split, in file order; images are left undecoded."""
    source = open_source(spec, spec.split, data_dir, {image_key: tfds.decode.SkipDecoding()})
    chunk = 1024
    for start in range(0, len(source), chunk):
        for example in source.__getitems__(list(range(start, min(start + chunk, len(source))))):
            yield from text.texts(example)


def caption_vocabulary(
    source, spec: TfdsSpec, data_dir: str, image_key: str, text: TextFeature
) -> tuple[Vocabulary, str]:
    """The vocabulary of the training split's captions and the file that caches it: read from
    the file when it was built for this split and feature, else built and written there."""
    path = vocabulary_path(source, spec, text)
    about = {
        "dataset": spec.name,
        "split": spec.split,
        "text_feature": text.path,
        "num_examples": len(source),
    }
    try:
        with open(path) as f:
            cached = json.load(f)
        if {key: cached.get(key) for key in about} == about:
            return Vocabulary.from_json(cached["vocabulary"]), path
        _log.warning("%s was built for other data; rebuilding it.", path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as err:
        _log.warning("cannot read the cached vocabulary %s (%s); rebuilding it.", path, err)
    vocabulary = captions.build_vocabulary(training_texts(spec, data_dir, image_key, text))
    partial = f"{path}.{os.getpid()}.tmp"  # written whole, then renamed: readers never see half
    try:
        with open(partial, "w") as f:
            json.dump({**about, "vocabulary": vocabulary.to_json()}, f)
        os.replace(partial, path)
    except OSError as err:
        _log.warning("cannot cache the vocabulary in %s (%s); it is rebuilt next time.", path, err)
        with contextlib.suppress(OSError):
            os.remove(partial)
    return vocabulary, path


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


def choose_caption(count: int, draw: tuple[int, int, int] | None) -> int:
    """Which of an example's ``count`` captions to read: drawn from
    ``np.random.default_rng([seed, epoch, index])`` for ``draw = (seed, epoch, index)``, the
    first when ``draw`` is None (held-out and readout arrays)."""
    if draw is None or count <= 1:
        return 0
    return int(np.random.default_rng(list(draw)).integers(count))


@dataclasses.dataclass(frozen=True)
class HostPreprocess:
    """A decoded TFDS example → ``{'images': uint8 [H, W, C], 'tokens'?: int32 [text_length],
    'labels'?: int32 [], ...}``, one more int32 [] per ``(array, feature)`` of ``extra_labels``.

    ``tokens`` when ``text`` is set: one of the example's captions (`choose_caption`) encoded
    with ``vocabulary``. A plain picklable object, so grain can ship it to worker processes.
    """

    image_key: str
    label_key: str | None
    image_size: int | None
    text: TextFeature | None = None
    vocabulary: Vocabulary | None = dataclasses.field(default=None, repr=False)
    text_length: int = DEFAULT_TEXT_LENGTH
    extra_labels: tuple[tuple[str, str], ...] = ()

    @functools.cached_property
    def word_ids(self) -> dict[str, int]:
        """The vocabulary's word → id map, built once per process rather than per caption."""
        return self.vocabulary.index

    def tokens(self, example: dict, draw: tuple[int, int, int] | None = None) -> np.ndarray:
        """int32 [text_length]: the chosen caption's ids (all padding when there is none)."""
        texts = self.text.texts(example)
        if not texts:
            return np.zeros(self.text_length, np.int32)
        chosen = texts[choose_caption(len(texts), draw)]
        return captions.encode([chosen], self.word_ids, self.text_length)[0]

    def __call__(self, example: dict, draw: tuple[int, int, int] | None = None) -> dict:
        """``draw`` = (seed, epoch, index) picks the caption of a training example."""
        image = np.asarray(example[self.image_key], dtype=np.uint8)
        if image.ndim == 2:
            image = image[..., None]
        if self.image_size is not None:
            image = resize_and_center_crop(image, self.image_size)
        out = {"images": image}
        if self.text is not None:
            out["tokens"] = self.tokens(example, draw)
        if self.label_key is not None:
            out["labels"] = np.int32(example[self.label_key])
        for array, feature in self.extra_labels:
            out[array] = np.int32(example[feature])
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
    step's global batch: ``{'images': [L, H, W, C], 'tokens'?: [L, T], 'labels'?: [L],
    'index': [L]}``, L = global_batch / process_count. Random access, so any step is read
    directly, without replaying earlier ones."""
    num_examples = len(source)
    if global_batch % process_count:
        raise UserError(
            f"batch_size {global_batch} does not split evenly over {process_count} processes; "
            "use a multiple of the process count."
        )
    steps_per_epoch(num_examples, global_batch)  # a clear error when the batch is too large
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
        .map(functools.partial(read_at_position, source, preprocess, seed))
        .batch(global_batch // process_count)
    )


def read_at_position(source, preprocess, seed: int, position: int) -> dict:
    """The example at ``position`` of the endless stream: pass e = position // n reads the
    record that pass's permutation (the one in-memory datasets use too) puts there, and its
    caption is drawn from (seed, e, record key)."""
    num_examples = len(source)
    record_key = example_at(position, num_examples=num_examples, seed=seed)
    return read_example(source, preprocess, record_key, draw=(seed, position // num_examples))


def read_example(source, preprocess, record_key: int, draw: tuple[int, int] | None = None) -> dict:
    """Record ``record_key`` read (ArrayRecord read + image decode), preprocessed (resize,
    caption encoding), and its ``index`` in the split, as in-memory batches carry it (memory
    banks key on it). ``draw`` = (seed, epoch) picks the caption of a training example; None
    takes the first."""
    if draw is None:
        example = preprocess(source[record_key])
    else:
        example = preprocess(source[record_key], (*draw, record_key))
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
    vocabulary_file: str | None = None  # where the captions' vocabulary is cached
    extra_label_classes: tuple[tuple[str, int], ...] = ()  # (array, classes) of label_features

    @property
    def has_labels(self) -> bool:
        return self.num_classes is not None

    @property
    def has_text(self) -> bool:
        return self.preprocess.text is not None

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The captions' vocabulary (None without text)."""
        return self.preprocess.vocabulary

    @property
    def spec(self) -> dict[str, ArraySpec]:
        """``images`` uint8 [H, W, C], ``tokens`` int32 [text_length] when the data has
        captions, ``labels`` when it is labelled, and each array of ``label_features``."""
        spec = {"images": ArraySpec(tuple(self.image_shape), "uint8", "images")}
        if self.has_text:
            vocabulary = self.preprocess.vocabulary
            spec["tokens"] = ArraySpec(
                (self.preprocess.text_length,),
                "int32",
                "tokens",
                num_values=len(vocabulary),
                vocabulary=vocabulary,
            )
        if self.num_classes is not None:
            spec["labels"] = ArraySpec((), "int32", "label", num_values=self.num_classes)
        for array, classes in self.extra_label_classes:
            spec[array] = ArraySpec((), "int32", "label", num_values=classes)
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
        NumPy ``{'images': uint8 [L, H, W, C], 'tokens'?: int32 [L, T], 'labels'?: int32 [L],
        'index': int32 [L]}``,
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
        ``images: uint8 [N, H, W, C]``, ``labels: int32 [N]`` or None when unlabelled
        (`eval_examples` has every array, ``tokens`` too)."""
        examples = self.eval_examples(split, max_examples, read_threads)
        return examples["images"], examples.get("labels")

    def eval_examples(
        self, split: str | None = None, max_examples: int | None = None, read_threads: int = 8
    ) -> dict[str, np.ndarray]:
        """`eval_arrays` as named arrays: ``images`` uint8 [N, H, W, C], ``tokens`` int32
        [N, text_length] when the data has captions (each image's first), ``labels`` int32
        [N] when labelled."""
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
        return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}

    def readout_data(self, max_train: int, max_heldout: int) -> ArrayDataset:
        """The first ``max_train`` examples of the training split and ``max_heldout`` of the
        held-out one, in file order, in memory. TFDS shuffles examples when it writes the files,
        so a prefix is a fair sample. Examples whose label is withheld (-1, e.g. STL-10's
        ``unlabelled`` part of ``train+unlabelled``) are left out of the training part.
        Captioned data carries ``tokens`` (each image's first caption) too."""
        train = self.eval_examples(self.tfds_spec.split, max_train)
        test = self.eval_examples(None, max_heldout)
        if "labels" in train:
            labelled = train["labels"] >= 0
            train = {name: array[labelled] for name, array in train.items()}
        return ArrayDataset(self.name, train, test, self.spec)

    def __repr__(self) -> str:
        labels = f"{self.num_classes} classes" if self.num_classes else "no labels"
        labels += "".join(
            f", {array}: {classes} classes" for array, classes in self.extra_label_classes
        )
        text = ""
        if self.has_text:
            preprocess = self.preprocess
            text = (
                f", tokens={preprocess.text.path!r} → {preprocess.text_length} ids of "
                f"{len(preprocess.vocabulary)} words"
            )
        return (
            f"TfdsDataset({self.name!r}, train={self.num_train_examples}, "
            f"heldout={self.heldout_split!r}, image_shape={self.image_shape}{text}, {labels})"
        )


def load_tfds(
    spec: str,
    image_size: int | None = None,
    data_dir: str | None = None,
    heldout_split: str | None = None,
    worker_count: int = 0,
    read_threads: int = 4,
    prefetch_batches: int = 4,
    text_feature: str | None = None,
    text_length: int | None = None,
    label_features=(),
) -> TfdsDataset:
    """Opens ``tfds:NAME[/CONFIG][:VERSION][:SPLIT]`` prepared as ArrayRecord under
    ``data_dir`` ($TFDS_DATA_DIR, ~/tensorflow_datasets by default). ``image_size`` resizes
    every image to ``image_size × image_size`` on the host (needed when sizes vary);
    ``heldout_split`` overrides the default held-out split (``test``, else ``validation``).
    ``text_feature`` names the captions read as ``tokens`` (default: the first of
    `CAPTION_FEATURES` present), ``text_length`` their length in ids (default 77; the text
    model's ``max_length``). 0 and "" mean the default too, as the config writes them. The
    reading options are the defaults of `TfdsDataset.local_train_batches`.
    ``label_features`` reads more ClassLabel features as labels (see the module docstring).

    A training split whose labels are withheld (all -1, like STL-10's ``unlabelled``) is
    read as unlabelled. Captions need their vocabulary, built from the training split on the
    first load and cached (see the module docstring)."""
    image_size = image_size or None  # the config writes "not set" as 0 and ""
    heldout_split = heldout_split or None
    text_length = check_text_length(text_length or DEFAULT_TEXT_LENGTH)
    parsed = parse_tfds_spec(spec)
    data_dir = resolve_data_dir(data_dir)
    source = open_source(parsed, parsed.split, data_dir)
    info = source.dataset_info
    features = info.features
    image_key, label_key = find_image_key(features), find_label_key(features)
    extra_labels = parse_label_features(label_features, features, parsed.name)
    if "labels" in extra_labels:
        label_key = extra_labels.pop("labels")
    text = find_text_feature(features, text_feature, parsed.name)
    if len(source) == 0:
        raise UserError(f"{parsed.name!r} split {parsed.split!r} holds no examples.")
    vocabulary = vocabulary_file = None
    if text is not None:
        vocabulary, vocabulary_file = caption_vocabulary(source, parsed, data_dir, image_key, text)
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
        preprocess=HostPreprocess(
            image_key=image_key,
            label_key=label_key,
            image_size=image_size,
            text=text,
            vocabulary=vocabulary,
            text_length=text_length,
            extra_labels=tuple(extra_labels.items()),
        ),
        worker_count=worker_count,
        read_threads=read_threads,
        prefetch_batches=prefetch_batches,
        vocabulary_file=vocabulary_file,
        extra_label_classes=tuple(
            (array, features[feature].num_classes) for array, feature in extra_labels.items()
        ),
    )
