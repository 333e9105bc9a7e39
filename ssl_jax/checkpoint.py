"""Checkpoints of the whole train state with orbax: atomic, asynchronous, the K latest kept.

Orbax writes each step into a temporary directory and renames it when complete, so a run
killed during a save leaves the previous checkpoint as the latest usable one; leftover
temporary directories are removed when the manager next opens the directory.
"""

import os

import jax
import orbax.checkpoint as ocp

from ssl_jax.errors import UserError


class Checkpoints:
    """The ``checkpoints/`` directory of a run."""

    def __init__(self, directory: str, keep: int):
        self.directory = os.path.abspath(directory)
        try:
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=keep, cleanup_tmp_directories=True, create=True
                ),
            )
        except OSError as err:
            raise UserError(f"cannot use checkpoint directory {self.directory}: {err}.") from None

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state) -> None:
        """Starts an asynchronous save of ``state`` at ``step``; returns before it is written."""
        try:
            self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        except OSError as err:
            raise UserError(
                f"cannot write checkpoint {step} in {self.directory}: {err}; "
                "free disk space or choose a writable --workdir (earlier checkpoints are intact)."
            ) from None

    def restore(self, step: int, like):
        """Restores ``step`` with the structure, dtypes and shardings of the pytree ``like``."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def restore_raw(self, step: int):
        """Restores ``step`` as nested dicts of arrays on this process's first device.

        The structure comes from the checkpoint's own metadata, so no train state is needed,
        and the arrays land on one local device whatever mesh or process count saved them.
        """
        path = os.path.join(self.directory, str(step), "default")
        tree = ocp.StandardCheckpointer().metadata(path).item_metadata
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree
        )
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def set_aside_after(self, step: int) -> list[int]:
        """Moves checkpoints later than ``step`` to ``../abandoned_checkpoints/`` (not deleted).

        Resuming from an earlier step abandons the later ones; they are kept for inspection
        but no longer count as checkpoints of the run.
        """
        later = [s for s in self.all_steps() if s > step]
        if later:
            aside = os.path.join(os.path.dirname(self.directory), "abandoned_checkpoints")
            os.makedirs(aside, exist_ok=True)
            for s in later:
                os.replace(os.path.join(self.directory, str(s)), os.path.join(aside, str(s)))
            self._manager.reload()
        return later

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
