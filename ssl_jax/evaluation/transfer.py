"""Transfer between label sets: pretrain on some classes, evaluate on the others.

Notes 001 §2.1 and §3.1: in transfer the downstream task's targets (and usually its inputs)
differ from pretraining's. With one labelled dataset this is made explicit by splitting the
classes: e.g. a supervised (or self-supervised) encoder pretrained on digits 0–4 only, then
probed on digits 5–9, whose images and labels it never saw.

``class_subset`` keeps the rows of the chosen classes in both splits and renumbers the
labels 0 … len(classes) − 1 in the order given, so the probes see a K-class problem.
``save_npz`` writes a subset as the ``npz:`` dataset the trainer reads (``images`` and
``labels``; the trainer makes its own stratified 80/20 split of the file).
"""

import dataclasses

import numpy as np

from ssl_jax.data.datasets import Dataset
from ssl_jax.errors import UserError


def class_subset(dataset: Dataset, classes) -> Dataset:
    """``dataset`` restricted to ``classes`` (both splits), labels renumbered 0 … K − 1."""
    if dataset.train_labels is None:
        raise UserError(f"dataset {dataset.name!r} has no labels to select classes by.")
    classes = [int(c) for c in classes]
    present = set(np.unique(dataset.train_labels).tolist())
    missing = [c for c in classes if c not in present]
    if missing or len(set(classes)) != len(classes) or len(classes) < 2:
        raise UserError(
            f"classes {classes}: give at least two distinct classes of {dataset.name!r} "
            f"(it has {sorted(present)})."
        )
    lookup = np.full(max(max(classes), int(dataset.num_classes)) + 1, -1, np.int32)
    lookup[classes] = np.arange(len(classes), dtype=np.int32)

    def keep(arrays):
        rows = lookup[arrays["labels"]] >= 0
        kept = {name: array[rows] for name, array in arrays.items()}
        kept["labels"] = lookup[kept["labels"]]
        return kept

    name = f"{dataset.name}[classes {','.join(map(str, classes))}]"
    spec = dict(dataset.spec)
    spec["labels"] = dataclasses.replace(spec["labels"], num_values=len(classes))
    return dataclasses.replace(
        dataset, name=name, train=keep(dataset.train), test=keep(dataset.test), spec=spec
    )


def save_npz(dataset: Dataset, path: str, splits=("train", "test")) -> str:
    """Writes the chosen splits of ``dataset`` to ``path`` as ``images`` and ``labels``."""
    images = np.concatenate([getattr(dataset, f"{s}_images") for s in splits])
    labels = np.concatenate([getattr(dataset, f"{s}_labels") for s in splits])
    np.savez(path, images=images, labels=labels)
    return path
