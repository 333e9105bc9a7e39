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
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import jax
import numpy as np

from ssl_jax.data.spec import decode_batch
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


@functools.lru_cache(maxsize=4)
def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the examples in pass ``epoch`` over the data: a permutation drawn from
    ``np.random.default_rng([seed, epoch])``. The one batch-order rule of every dataset."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batch_indices(num_examples: int, global_batch: int, seed: int, step: int) -> np.ndarray:
    """Indices of the examples in the global batch of ``step`` (shape [global_batch])."""
    per_epoch = steps_per_epoch(num_examples, global_batch)
    epoch, position = divmod(step, per_epoch)
    order = epoch_order(num_examples, seed, epoch)
    return order[position * global_batch : (position + 1) * global_batch]


def example_at(position: int, num_examples: int, seed: int) -> int:
    """The example at ``position`` of the endless stream of passes (``epoch_order`` each):
    what `batch_indices` gives, one example at a time (the TFDS reader uses it)."""
    epoch, index = divmod(position, num_examples)
    return int(epoch_order(num_examples, seed, epoch)[index])


def process_slice(indices: np.ndarray) -> np.ndarray:
    """This process's equal share of the global batch's indices."""
    count, index = jax.process_count(), jax.process_index()
    per_process = len(indices) // count
    return indices[index * per_process : (index + 1) * per_process]


def host_batch(dataset: "Dataset", indices: np.ndarray) -> dict:
    """Every named array of the training split at ``indices``, as stored (NumPy), and
    ``index``: each example's position in the training split (memory banks key on it)."""
    batch = {name: array[indices] for name, array in dataset.train.items()}
    batch["index"] = np.asarray(indices, np.int32)
    return batch


def device_batch(local_batch: dict, sharding: jax.sharding.Sharding, spec=None) -> dict:
    """Places this process's part of the batch on the mesh as one global sharded array per
    name; with the element ``spec``, the arrays are then decoded on the devices (uint8 pixels
    travel as bytes and become float32 there)."""
    batch = {
        name: jax.make_array_from_process_local_data(sharding, x) for name, x in local_batch.items()
    }
    return batch if spec is None else decode_on_device(spec, batch)


def decode_on_device(spec, batch: dict) -> dict:
    """`ssl_jax.data.spec.decode` of a batch already on the mesh, jitted (once per spec and
    shapes), keeping each array's sharding."""
    return _decoder(tuple(spec.items()))(batch)


@functools.lru_cache(maxsize=32)
def _decoder(spec_items):
    spec = dict(spec_items)
    return jax.jit(functools.partial(decode_batch, spec))


def on_mesh(
    local_batches: Iterator[tuple[int, dict]], sharding, spec=None
) -> Iterator[tuple[int, dict]]:
    """``(step, this process's NumPy slice)`` pairs → ``(step, global batch on the mesh)``,
    decoded when ``spec`` is given.

    Closing the result closes ``local_batches``, which stops a reader's threads or workers.
    """
    with contextlib.closing(local_batches):
        for step, local_batch in local_batches:
            yield step, device_batch(local_batch, sharding, spec)


def batches(dataset: "Dataset", global_batch: int, seed: int, start_step: int, sharding):
    """Yields ``(step, batch)`` from ``start_step`` on; ``batch`` is decoded, on the mesh."""
    step = start_step
    while True:
        indices = process_slice(batch_indices(dataset.num_train_examples, global_batch, seed, step))
        yield step, device_batch(host_batch(dataset, indices), sharding, dataset.spec)
        step += 1


def to_float_images(images):
    """uint8 [0, 255] or float [0, 1] images → float32 [0, 1] (run on device, inside the step)."""
    import jax.numpy as jnp

    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255.0
    return images.astype(jnp.float32)
