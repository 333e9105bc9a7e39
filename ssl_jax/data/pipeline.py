"""Host → mesh input: deterministic batch order and batches placed sharded on the devices.

The order of examples depends only on ``(seed, step)``: epoch e = step // steps_per_epoch uses
the permutation drawn from ``np.random.default_rng([seed, e])``, and the last incomplete batch
of an epoch is dropped. A run resumed at step s therefore sees exactly the batches an
uninterrupted run sees from step s on.

Each process builds only its own slice of the global batch (``process_index``-th of
``process_count`` equal slices) and `jax.make_array_from_process_local_data` assembles the
global, batch-sharded array on the mesh, so the same code runs on one host or many. TFDS
datasets (`ssl_jax.data.tfds`) keep the same contract and reach the mesh through `on_mesh`.
"""

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import jax
import numpy as np

from ssl_jax.errors import UserError

if TYPE_CHECKING:  # datasets.py imports this module; the annotation alone needs no cycle
    from ssl_jax.data.datasets import Dataset


def steps_per_epoch(num_examples: int, global_batch: int) -> int:
    if global_batch > num_examples:
        raise UserError(
            f"batch_size {global_batch} is larger than the {num_examples} training examples; "
            "lower --config.batch_size."
        )
    return num_examples // global_batch


def batch_indices(num_examples: int, global_batch: int, seed: int, step: int) -> np.ndarray:
    """Indices of the examples in the global batch of ``step`` (shape [global_batch])."""
    per_epoch = steps_per_epoch(num_examples, global_batch)
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    return order[position * global_batch : (position + 1) * global_batch]


def process_slice(indices: np.ndarray) -> np.ndarray:
    """This process's equal share of the global batch's indices."""
    count, index = jax.process_count(), jax.process_index()
    per_process = len(indices) // count
    return indices[index * per_process : (index + 1) * per_process]


def host_batch(dataset: "Dataset", indices: np.ndarray) -> dict:
    """Images (and labels when the dataset has them) of ``indices``, as NumPy."""
    batch = {"images": dataset.train_images[indices]}
    if dataset.train_labels is not None:
        batch["labels"] = dataset.train_labels[indices]
    return batch


def device_batch(local_batch: dict, sharding: jax.sharding.Sharding) -> dict:
    """Places this process's part of the batch on the mesh as one global sharded array."""
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def on_mesh(local_batches: Iterator[tuple[int, dict]], sharding) -> Iterator[tuple[int, dict]]:
    """``(step, this process's NumPy slice)`` pairs → ``(step, global batch on the mesh)``.

    Closing the result closes ``local_batches``, which stops a reader's threads or workers.
    """
    with contextlib.closing(local_batches):
        for step, local_batch in local_batches:
            yield step, device_batch(local_batch, sharding)


def batches(dataset: "Dataset", global_batch: int, seed: int, start_step: int, sharding):
    """Yields ``(step, batch)`` from ``start_step`` on; ``batch`` lives on the mesh."""
    step = start_step
    num_examples = len(dataset.train_images)
    while True:
        indices = process_slice(batch_indices(num_examples, global_batch, seed, step))
        yield step, device_batch(host_batch(dataset, indices), sharding)
        step += 1


def to_float_images(images):
    """uint8 [0, 255] or float [0, 1] images → float32 [0, 1] (run on device, inside the step)."""
    import jax.numpy as jnp

    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255.0
    return images.astype(jnp.float32)
