"""Checkpoints of the whole train state with orbax: atomic, asynchronous, the K latest kept.

Orbax writes each step into a temporary directory and renames it when complete, so a run
killed during a save leaves the previous checkpoint as the latest usable one; leftover
temporary directories are removed when the manager next opens the directory.

A save returns before its arrays are written, so a write failure (disk full, a directory that
refuses writes) surfaces later: in the next save, or when the run waits for or closes its
checkpoints. Each of those places turns it into the same one-line `UserError`.
"""

import contextlib
import logging
import os
import re

import jax
import orbax.checkpoint as ocp
from etils import epath

from ssl_jax.errors import UserError

# Tensorstore (which writes the arrays) reports a failed write as a ValueError whose message
# ends with the OS error number, e.g. "... No space left on device [os_error_code='28']".
_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")


def write_failure_reason(err: BaseException) -> str | None:
    """The OS's reason if ``err`` is a failed file-system operation, else None."""
    if isinstance(err, OSError):
        return err.strerror or str(err)
    match = _OS_ERROR_CODE.search(str(err)) if isinstance(err, ValueError) else None
    return os.strerror(int(match.group(1))) if match else None


def caused_by_write_failure(err: BaseException | None) -> bool:
    while err is not None:
        if write_failure_reason(err):
            return True
        err = err.__cause__ or err.__context__
    return False


class _WriteFailureLogFilter(logging.Filter):
    """Drops orbax's log records (each with a traceback) of a failed background write.

    Orbax logs the failure in each thread it passes through and then re-raises it to
    `Checkpoints`, which reports it as one line; without this the user would see several
    tracebacks for an error that is theirs to fix, not a bug.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from_orbax = f"{os.sep}orbax{os.sep}" in record.pathname
        failure = record.exc_info[1] if record.exc_info else None
        return not (from_orbax and caused_by_write_failure(failure))


_WRITE_FAILURE_LOG_FILTER = _WriteFailureLogFilter()


class Checkpoints:
    """The ``checkpoints/`` directory of a run."""

    def __init__(self, directory: str, keep: int, read_only: bool = False):
        """``read_only``: for readers (`load_encoder`, ``init_from``): nothing in the directory
        is created, cleaned up or deleted, so reading a run that is still training is safe."""
        self.directory = os.path.abspath(directory)
        self._in_flight: int | None = None  # the step whose asynchronous save may be running
        self._read_only = read_only
        logging.getLogger("absl").addFilter(_WRITE_FAILURE_LOG_FILTER)
        # Directories are created in `save` itself: created in the background, a refused
        # mkdir leaves orbax's other writers waiting for it for minutes before failing.
        async_options = ocp.AsyncOptions(create_directories_asynchronously=False)
        if read_only:
            # Not orbax's read_only mode, which warns on every open; a manager that never
            # saves deletes nothing either.
            options = ocp.CheckpointManagerOptions(max_to_keep=None, create=False)
        else:
            options = ocp.CheckpointManagerOptions(
                max_to_keep=keep,
                cleanup_tmp_directories=True,
                create=True,
                async_options=async_options,
            )
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        except OSError as err:
            raise UserError(f"cannot use checkpoint directory {self.directory}: {err}.") from None
        # Orbax removes the temporary directories of interrupted saves in a background thread
        # that its close() does not wait for: a run stopping on an error right after this
        # would leave the thread to fail at interpreter exit, with a traceback. Wait for it.
        cleanup = getattr(self._manager, "_cleanup_tmp_directory_future", None)
        if cleanup is not None:
            cleanup.result()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state) -> None:
        """Starts an asynchronous save of ``state`` at ``step``; returns before it is written.

        Waits for the previous save first (orbax would anyway), so that its failure is
        reported under its own step.
        """
        assert not self._read_only, "a read-only Checkpoints never saves"
        self.wait()
        with self._writing(step):
            self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self._in_flight = step

    @contextlib.contextmanager
    def _writing(self, step: int | None):
        """Turns a failed write of checkpoint ``step`` into a `UserError` naming the fix."""
        try:
            yield
        except Exception as err:  # noqa: BLE001 - tensorstore reports OS errors as ValueError
            reason = write_failure_reason(err)
            if reason is None:
                raise
            raise self._write_error(step, reason) from None

    def _write_error(self, step: int | None, reason: str) -> UserError:
        # The manager forgets steps a failed save meant to replace; the disk still has them.
        self._manager.reload()
        latest = self._manager.latest_step()
        kept = (
            f"checkpoint {latest} is intact and --resume continues from it"
            if latest is not None
            else "there is no earlier checkpoint"
        )
        return UserError(
            f"cannot write checkpoint {step} in {self.directory}: {reason}; free disk space "
            f"or make the directory writable ({kept}), or start again in another --workdir."
        )

    def restore(self, step: int, like):
        """Restores ``step`` with the structure, dtypes and shardings of the pytree ``like``."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def _item_path(self, step: int) -> str:
        return os.path.join(self.directory, str(step), "default")

    def restore_raw(self, step: int):
        """Restores ``step`` as nested dicts of arrays on this process's first device.

        The structure comes from the checkpoint's own metadata, so no train state is needed,
        and the arrays land on one local device whatever mesh or process count saved them.
        """
        tree = self.metadata(step)
        return self._manager.restore(step, args=ocp.args.StandardRestore(_on_one_device(tree)))

    def metadata(self, step: int) -> dict:
        """The saved tree of ``step``: shapes and dtypes, no values."""
        # Read through the item's handler: orbax's Checkpointer would look for the step's
        # _CHECKPOINT_METADATA inside the item directory and warn on every load that it is
        # missing (the manager writes it one level up).
        handler = ocp.StandardCheckpointHandler()
        try:
            item = handler.metadata(epath.Path(self._item_path(step)))
        finally:
            handler.close()
        return getattr(item, "tree", item)

    def restore_modules(self, step: int, modules) -> dict:
        """Only the parameters and batch statistics of ``modules`` of checkpoint ``step``:
        ``{"params": {module: tree}, "batch_stats": {module: tree}, "available": [...]}``.

        Nothing else is read, so a damaged optimizer state or objective state does not stand
        in the way of loading a representation.
        """
        tree = self.metadata(step)
        params, stats = tree.get("params", {}), tree.get("batch_stats") or {}
        wanted = {"params": {m: params[m] for m in modules if m in params}}
        module_stats = {m: stats[m] for m in modules if m in stats and stats[m]}
        if module_stats:  # orbax restores no empty subtree
            wanted["batch_stats"] = module_stats
        abstract = _on_one_device(wanted)
        handler = ocp.PyTreeCheckpointHandler()
        try:
            restored = handler.restore(
                epath.Path(self._item_path(step)),
                args=ocp.args.PyTreeRestore(
                    item=abstract,
                    restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                    partial_restore=True,
                ),
            )
        finally:
            handler.close()
        return {
            "params": dict(restored.get("params", {})),
            "batch_stats": dict(restored.get("batch_stats", {})),
            "available": sorted(params),
        }

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
        """Waits until the last save is written; raises `UserError` if it failed."""
        step, self._in_flight = self._in_flight, None
        with self._writing(step):
            self._manager.wait_until_finished()

    def close(self) -> None:
        self.wait()
        self._manager.close()


def _on_one_device(tree):
    """Abstract arrays (shape, dtype) of a metadata tree, placed on this process's first device."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
