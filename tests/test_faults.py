"""Faults a long run meets: SIGKILL (also during a save), a full or unwritable disk, a damaged
checkpoint, a NaN loss. Each must leave the run resumable from its last good checkpoint."""

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from etils import epath
from jax.experimental.compilation_cache import compilation_cache

from ssl_jax import train
from ssl_jax.checkpoint import Checkpoints
from ssl_jax.logs import MetricsLog
from tests.configs import REPO, xla_flags
from tests.test_cli_and_checkpoints import error_line, final_params, jax_leaves, write_config
from tests.toy_objectives import TMP_SUFFIX


@pytest.fixture(scope="module", autouse=True)
def compile_each_program_once(tmp_path_factory):
    """A persistent compilation cache for this module's runs, in-process and subprocesses.

    Compiling dominates a tiny run (tens of seconds on two busy cores), and the runs here
    share a few configs, so each program is compiled once. Cached executables are the very
    programs compiled fresh, so bitwise comparisons are unaffected.
    """
    directory = str(tmp_path_factory.mktemp("jax_cache"))
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", directory)
    compilation_cache.reset_cache()
    yield directory
    jax.config.update("jax_compilation_cache_dir", previous)
    compilation_cache.reset_cache()


def cli_env(cache_dir: str) -> dict:
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_COMPILATION_CACHE_DIR": cache_dir}
    env["XLA_FLAGS"] = xla_flags(8)
    return env


# One config, so one compiled program, for the SIGKILL, save-fault and damaged-checkpoint tests.
SAVE_FAULT_RUN = dict(num_steps=6, checkpoint_every=2)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished run with checkpoints at steps 2, 4 and 6; its final params and statistics."""
    directory = tmp_path_factory.mktemp("finished")
    config = write_config(directory, **SAVE_FAULT_RUN, keep_checkpoints=3)
    workdir = str(directory / "run")
    assert train.main(["--config", config, "--workdir", workdir]) == 0
    params, stats, _ = final_params(workdir)
    return config, workdir, (params, stats)


# --- SIGKILL at random points, one of them inside an asynchronous save ----------------------

STEP_PAUSE_SEC = 0.3  # how long each step of the killed runs is held after it is logged
SAVE_PAUSE_SEC = 1.0  # how long each save of the killed runs is held open half-way


def draw_kill_points(seed: int = 0) -> list[tuple[str, int, float]]:
    """Where to kill: (event, step, delay), ``delay`` seconds after ``step`` is logged (two
    points), and once after a save of ``step`` has started, so that the kill lands inside it."""
    rng = np.random.default_rng(seed)
    steps = sorted(int(s) for s in rng.choice(np.arange(1, 6), size=2, replace=False))
    points = [("logged", s, float(rng.uniform(0, STEP_PAUSE_SEC))) for s in steps]
    save_step = int(rng.choice([2, 4]))
    points.append(("saving", save_step, float(rng.uniform(0, 0.5 * SAVE_PAUSE_SEC))))
    return points


def start_slowed_down_run(config: str, workdir: str, cache_dir: str) -> subprocess.Popen:
    """The CLI in a subprocess, slowed down by ``tests.toy_objectives.slow_down_run``."""
    os.makedirs(workdir)
    code = (
        "import sys; from tests.toy_objectives import slow_down_run; "
        f"slow_down_run({STEP_PAUSE_SEC}, {SAVE_PAUSE_SEC}, {workdir!r}); "
        "from ssl_jax.train import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, "--config", config, "--workdir", workdir],
        cwd=REPO,
        env=cli_env(cache_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def last_logged_step(workdir: str) -> int:
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    complete = [line for line in lines if line.endswith("}")]
    return json.loads(complete[-1])["step"] if complete else 0


def wait_for(event: str, step: int, workdir: str, process: subprocess.Popen) -> None:
    happened = {
        "logged": lambda: last_logged_step(workdir) >= step,
        "saving": lambda: os.path.exists(os.path.join(workdir, f"saving_{step}")),
    }[event]
    deadline = time.time() + 240
    while not happened():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.time() < deadline, f"the run never reached {event} {step}"
        time.sleep(0.02)


def checkpoint_dir_entries(workdir: str) -> tuple[list[int], list[str]]:
    """The complete steps and the temporary (partial) saves in ``workdir/checkpoints``."""
    names = os.listdir(os.path.join(workdir, "checkpoints"))
    return sorted(int(n) for n in names if n.isdigit()), sorted(n for n in names if TMP_SUFFIX in n)


@pytest.mark.parametrize(("event", "step", "delay"), draw_kill_points())
def test_sigkill_then_resume_ends_bitwise_equal_to_an_uninterrupted_run(
    event, step, delay, finished_run, compile_each_program_once, tmp_path, capsys
):
    """Killed at seeded random points (the same config as ``finished_run``, logging every
    step), then resumed in this process: the final state is bitwise the uninterrupted one."""
    _, _, (params_ref, stats_ref) = finished_run
    config = write_config(tmp_path, **SAVE_FAULT_RUN, log_every=1, keep_checkpoints=1)
    workdir = str(tmp_path / "killed")
    process = start_slowed_down_run(config, workdir, compile_each_program_once)
    wait_for(event, step, workdir, process)
    time.sleep(delay)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()

    complete, partial = checkpoint_dir_entries(workdir)
    if event == "saving":
        assert partial == [f"{step}{TMP_SUFFIX}"], "the kill should land inside the save"
    # Only complete steps count; the partial save is neither listed nor taken as latest.
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=1)
    assert checkpoints.all_steps() == complete
    for s in complete:
        assert int(checkpoints.restore_raw(s)["step"]) == s
    checkpoints.close()

    capsys.readouterr()
    assert train.main(["--config", config, "--workdir", workdir, "--resume"]) == 0
    assert f"starting at step {max(complete, default=0)}/6" in capsys.readouterr().out
    params, stats, final_step = final_params(workdir)
    assert final_step == 6
    leaves = jax_leaves(params) + jax_leaves(stats)
    for a, b in zip(leaves, jax_leaves(params_ref) + jax_leaves(stats_ref), strict=True):
        np.testing.assert_array_equal(a, b)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == list(range(1, 7))


# --- A full disk or an unwritable directory at save time -------------------------------------

PATH_CLASS = type(epath.Path("/"))  # the path class orbax writes files and directories with


def orbax_error_logs(caplog) -> list[str]:
    """ERROR records that would reach stderr (orbax logs failed writes with tracebacks)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def resume_continues_from(step: int, config: str, workdir: str, capsys) -> None:
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=3)
    assert checkpoints.latest_step() == step
    assert int(checkpoints.restore_raw(step)["step"]) == step
    checkpoints.close()
    assert train.main(["--config", config, "--workdir", workdir, "--resume"]) == 0
    assert f"starting at step {step}/6" in capsys.readouterr().out
    assert final_params(workdir)[2] == 6


@pytest.mark.parametrize("failing_step", [4, 6], ids=["surfaces_at_next_save", "at_close"])
def test_disk_full_stops_with_one_line_and_keeps_the_earlier_checkpoint(
    failing_step, tmp_path, capsys, caplog, monkeypatch
):
    """ENOSPC injected where orbax's background writer writes the step's ``_METADATA``.

    The write happens after ``save()`` has returned, so the error reaches the loop through
    orbax's re-raise: in the next save (step 4) or when the run closes its checkpoints (step
    6, the last). ``keep_checkpoints=1``: the failed save must not have removed the one before.
    """

    def write_text(path, *args, **kwargs):
        in_failing_save = any(p.name == f"{failing_step}{TMP_SUFFIX}" for p in path.parents)
        if in_failing_save and path.name == "_METADATA":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return original_write_text(path, *args, **kwargs)

    original_write_text = PATH_CLASS.write_text
    monkeypatch.setattr(PATH_CLASS, "write_text", write_text)
    config = write_config(tmp_path, **SAVE_FAULT_RUN, keep_checkpoints=1)
    workdir = str(tmp_path / "run")
    directory = os.path.join(workdir, "checkpoints")
    err = error_line(capsys, ["--config", config, "--workdir", workdir])
    earlier = failing_step - 2
    assert f"cannot write checkpoint {failing_step} in {directory}: No space left" in err
    assert f"free disk space or make the directory writable (checkpoint {earlier} is intact" in err
    assert orbax_error_logs(caplog) == []

    monkeypatch.undo()
    resume_continues_from(earlier, config, workdir, capsys)


def refuse_writes_with_chattr(directory: str, request) -> None:
    """``chattr +i``: the kernel refuses new entries even to root (chmod would not)."""
    if subprocess.run(["chattr", "+i", directory], capture_output=True).returncode:
        pytest.skip("chattr +i is not supported here (needs root and ext4-like file system)")
    request.addfinalizer(lambda: subprocess.run(["chattr", "-i", directory], check=True))


def refuse_writes_by_injection(directory: str, monkeypatch) -> None:
    """EACCES from orbax's mkdir under ``directory``, what a read-only directory gives a user."""

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(directory + os.sep):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return original_mkdir(path, *args, **kwargs)

    original_mkdir = PATH_CLASS.mkdir
    monkeypatch.setattr(PATH_CLASS, "mkdir", mkdir)


@pytest.mark.parametrize("how", ["chattr", "injected"])
def test_unwritable_checkpoint_directory_stops_with_one_line(
    how, tmp_path, capsys, caplog, monkeypatch, request
):
    """The checkpoint directory stops accepting writes after the save of step 2.

    We run as root, for whom a read-only mode changes nothing; ``chattr +i`` makes the kernel
    itself refuse (EPERM) orbax's mkdir of the step's temporary directory, and the injected
    variant raises the EACCES a non-root user would get, where ``chattr`` is unavailable.
    """
    original_save = Checkpoints.save

    def save(checkpoints, step, state):
        if step == 4:
            checkpoints.wait()
            if how == "chattr":
                refuse_writes_with_chattr(checkpoints.directory, request)
            else:
                refuse_writes_by_injection(checkpoints.directory, monkeypatch)
        original_save(checkpoints, step, state)

    monkeypatch.setattr(Checkpoints, "save", save)
    config = write_config(tmp_path, **SAVE_FAULT_RUN, keep_checkpoints=3)
    workdir = str(tmp_path / "run")
    directory = os.path.join(workdir, "checkpoints")
    err = error_line(capsys, ["--config", config, "--workdir", workdir])
    reason = "Operation not permitted" if how == "chattr" else "Permission denied"
    assert f"cannot write checkpoint 4 in {directory}: {reason}; free disk space or make" in err
    assert "(checkpoint 2 is intact and --resume continues from it)" in err
    assert orbax_error_logs(caplog) == []

    if how == "chattr":
        subprocess.run(["chattr", "-i", directory], check=True)
    monkeypatch.undo()
    resume_continues_from(2, config, workdir, capsys)


# --- A damaged checkpoint ---------------------------------------------------------------------


def files_of(step_dir: str) -> list[str]:
    """The files of a checkpoint, largest (an array data file) first."""
    paths = [os.path.join(root, name) for root, _, names in os.walk(step_dir) for name in names]
    return sorted(paths, key=os.path.getsize, reverse=True)


def damage(step_dir: str, how: str) -> None:
    largest = files_of(step_dir)[0]
    if how == "emptied":
        for path in files_of(step_dir):
            os.truncate(path, 0)
    elif how == "data_file_deleted":
        os.remove(largest)
    elif how == "data_file_cut_short":
        os.truncate(largest, os.path.getsize(largest) // 2)


@pytest.mark.parametrize("how", ["emptied", "data_file_deleted", "data_file_cut_short"])
def test_corrupted_checkpoint_is_named_and_resume_from_step_falls_back(
    how, finished_run, tmp_path, capsys
):
    config, original, (reference, _) = finished_run
    workdir = str(tmp_path / "run")
    shutil.copytree(original, workdir)
    damage(os.path.join(workdir, "checkpoints", "6"), how)
    err = error_line(capsys, ["--config", config, "--workdir", workdir, "--resume"])
    assert f"{os.path.join(workdir, 'checkpoints', '6')} is corrupted or incomplete" in err
    assert "pass --resume_from_step 4" in err
    assert train.main(["--config", config, "--workdir", workdir, "--resume_from_step", "4"]) == 0
    params, _, step = final_params(workdir)
    assert step == 6
    for a, b in zip(jax_leaves(params), jax_leaves(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(os.path.join(workdir, "abandoned_checkpoints")) == ["6"]


# --- A NaN loss right at a checkpoint step ----------------------------------------------------


def test_nan_at_a_checkpoint_step_is_caught_before_it_is_saved(tmp_path, capsys):
    """The first NaN is at step 4, a checkpoint step, and nothing is logged in between
    (``log_every`` 100): only the check before the save can catch it."""
    fields = {"num_steps": 8, "checkpoint_every": 2, "log_every": 100}
    fields["objective.nan_from_step"] = 3  # the loss of step t sees t - 1 steps
    config = write_config(tmp_path, "toy_nan_after", **fields)
    workdir = str(tmp_path / "run")
    err = error_line(capsys, ["--config", config, "--workdir", workdir])
    assert "training diverged: the loss is nan at step 4" in err
    assert "the last good checkpoint is step 2" in err
    assert checkpoint_dir_entries(workdir) == ([2], [])
    params, _, step = final_params(workdir)
    assert step == 2 and all(np.all(np.isfinite(x)) for x in jax_leaves(params))


def test_resume_drops_a_metrics_line_cut_short_by_a_kill(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"step": s, "loss": 1.0 / s} for s in (2, 4, 6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 8, "lo')
    log = MetricsLog(str(tmp_path), start_step=4, total_steps=10)
    log.write(5, {"loss": 0.5}, steps_done=1)
    log.close()
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines()]
    assert steps == [2, 4, 5]
    assert not os.path.exists(str(path) + ".tmp")
