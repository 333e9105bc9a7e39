"""Mistakes a new user makes: each is one line, ``error: …``, exit status 2, and nothing saved
is touched (no workdir created, no file rewritten)."""

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ssl_jax import evaluate, train
from ssl_jax.data import load_dataset
from ssl_jax.encoder import load_encoder
from ssl_jax.errors import UserError
from tests.configs import REPO, xla_flags
from tests.test_cli_and_checkpoints import error_line, write_config


def test_config_file_with_a_syntax_error_names_the_line(tmp_path, capsys):
    path = tmp_path / "broken.py"
    path.write_text("def get_config():\n    return (\n")
    workdir = tmp_path / "w"
    err = error_line(capsys, ["--config", str(path), "--workdir", str(workdir)])
    assert f"config file {str(path)!r} has a syntax error at line" in err
    assert not workdir.exists()


def test_config_whose_get_config_raises_names_the_exception_and_line(tmp_path, capsys):
    path = tmp_path / "raises.py"
    path.write_text("def get_config():\n    return {}['model']\n")
    err = error_line(capsys, ["--config", str(path), "--workdir", str(tmp_path / "w")])
    assert "failed in get_config(): KeyError: 'model' (line 2: return {}['model'])" in err


def test_config_path_that_is_a_directory(tmp_path, capsys):
    err = error_line(capsys, ["--config", str(tmp_path), "--workdir", str(tmp_path / "w")])
    assert "is a directory; pass a config file" in err


def test_workdir_that_is_a_file_is_refused_and_left_alone(tmp_path, capsys):
    config = write_config(tmp_path)
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    err = error_line(capsys, ["--config", config, "--workdir", str(existing)])
    assert f"--workdir {existing} is a file, not a directory" in err
    assert existing.read_text() == "mine"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("batch_size=0", "batch_size must be a positive integer, got 0; set e.g."),
        ("batch_size=-8", "batch_size must be a positive integer, got -8"),
        ("num_steps=-5", "num_steps must be a positive integer, got -5"),
        ("num_steps=0", "for an untrained encoder, evaluate random:CONFIG"),
        ("log_every=0", "log_every must be a positive integer"),
        ("checkpoint_every=-1", "checkpoint_every must be a positive integer"),
        ("keep_checkpoints=0", "keep_checkpoints must be a positive integer"),
        ("readout.batch_size=0", "readout.batch_size must be a positive integer"),
        ("readout.knn_k=0", "readout.knn_k must be a positive integer"),
        ("num_devices=-1", "num_devices must be an integer ≥ 0"),
    ],
)
def test_sizes_that_cannot_work_are_refused_before_anything_runs(
    override, expected, tmp_path, capsys
):
    config = write_config(tmp_path)
    workdir = tmp_path / "w"
    err = error_line(
        capsys, ["--config", config, "--workdir", str(workdir), f"--config.{override}"]
    )
    assert expected in err
    assert not workdir.exists()


def test_resume_where_no_run_was_started_is_refused(tmp_path, capsys):
    config = write_config(tmp_path)
    mistyped = tmp_path / "rnu"
    err = error_line(capsys, ["--config", config, "--workdir", str(mistyped), "--resume"])
    assert f"--resume: no run to resume in {mistyped} (it does not exist)" in err
    assert "drop --resume to start a new run there" in err
    assert not mistyped.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    err = error_line(capsys, ["--config", config, "--workdir", str(empty), "--resume"])
    assert "(it holds no run (no config.json))" in err
    assert os.listdir(empty) == []


def test_evaluate_checks_protocol_options_before_loading_anything(tmp_path, capsys):
    missing = str(tmp_path / "no_such_run")
    argv = ["--checkpoint", missing, "--protocol", "knn", "--set", "kk=5"]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: --set kk: protocol 'knn' has no option 'kk'. Did you mean 'ks'? "
        "Its options: chunk_size, ks, num_classes, temperature."
    )
    argv = ["--checkpoint", missing, "--protocol", "diagnostics", "--set", "k=5"]
    assert evaluate.main(argv) == 2
    assert "protocol 'diagnostics' takes no --set options" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished tiny run (the suite's default tiny config: checkpoints 3 and 6)."""
    directory = tmp_path_factory.mktemp("small_run")
    config = write_config(directory)
    workdir = str(directory / "run")
    assert train.main(["--config", config, "--workdir", workdir]) == 0
    return config, workdir


def test_loading_an_encoder_logs_no_orbax_warnings(small_run, caplog):
    caplog.set_level(logging.INFO)
    assert load_encoder(small_run[1]).step == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []


def test_a_damaged_array_file_is_one_line_in_load_encoder_and_evaluate(small_run, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    shutil.copytree(small_run[1], workdir)
    step_dir = os.path.join(workdir, "checkpoints", "6")
    for root, _, names in os.walk(step_dir):
        if os.path.basename(root) == "d" and "ocdbt.process_0" in root:  # the array data files
            for name in names:  # zeroed, as a failing disk leaves them
                path = Path(root, name)
                path.write_bytes(bytes(path.stat().st_size))
    with pytest.raises(UserError, match=r"checkpoints/6 is damaged: it cannot be read for"):
        load_encoder(workdir)
    assert evaluate.main(["--checkpoint", workdir, "--protocol", "knn"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert f"load another step: {os.path.join(workdir, 'checkpoints', '3')}" in err


def test_resume_from_a_step_that_was_never_saved_is_refused(small_run, tmp_path, capsys):
    config, original = small_run
    workdir = str(tmp_path / "run")
    shutil.copytree(original, workdir)
    saved = Path(workdir, "config.json")
    before = saved.read_text()
    argv = ["--config", config, "--workdir", workdir, "--resume_from_step", "4"]
    err = error_line(capsys, argv)
    assert "no checkpoint at step 4" in err and "(available: [3, 6])" in err
    assert saved.read_text() == before


def run_module(module: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": xla_flags(8)}
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_an_error_exit_prints_nothing_after_the_error_line(small_run, tmp_path):
    """Orbax cleans up interrupted saves in a background thread; a command that stops on an
    error right away must not leave it to fail (with a traceback) at interpreter exit."""
    config, workdir = small_run
    result = run_module(
        "ssl_jax.train", "--config", config, "--workdir", workdir, "--resume_from_step", "4"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no checkpoint at step 4 in {os.path.join(workdir, 'checkpoints')} "
        "(available: [3, 6])."
    ]
    unsaved = tmp_path / "unsaved"  # a run stopped before its first checkpoint
    (unsaved / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "run_info.json"):
        shutil.copy(os.path.join(workdir, name), unsaved / name)
    result = run_module("ssl_jax.evaluate", "--checkpoint", str(unsaved), "--protocol", "knn")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {unsaved / 'checkpoints'} holds no checkpoint yet; load it after the run's "
        "first save (every checkpoint_every steps)."
    ]


def test_an_unprepared_tfds_dataset_is_one_error_without_tfds_warnings(tmp_path, caplog):
    (tmp_path / "cifar10" / "3.0.2").mkdir(parents=True)  # a build that never finished
    with pytest.raises(UserError, match="TFDS dataset 'cifar10' is not prepared"):
        load_dataset("tfds:cifar10", {"data_dir": str(tmp_path)})
    assert [r.getMessage() for r in caplog.records if "Variant folder" in r.getMessage()] == []
