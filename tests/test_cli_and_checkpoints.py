"""The command line, checkpoints, resuming, `load_encoder` and the errors users see.

Faults (SIGKILL, full or unwritable disks, damaged checkpoints) are in test_faults.py.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ssl_jax import train
from ssl_jax.checkpoint import Checkpoints
from ssl_jax.encoder import load_encoder
from tests.configs import REPO, xla_flags


def write_config(directory, objective="simclr", **fields) -> str:
    """A config file returning ``tiny_config(objective)`` with ``fields`` set (dotted keys)."""
    path = os.path.join(directory, f"config_{objective}.py")
    assignments = "".join(f"    c.{k} = {v!r}\n" for k, v in fields.items())
    with open(path, "w") as f:
        f.write(
            textwrap.dedent(
                f"""\
                from tests.configs import tiny_config

                def get_config():
                    c = tiny_config({objective!r})
                """
            )
            + assignments
            + "    return c\n"
        )
    return path


def run_cli(*args):
    """``python -m ssl_jax.train ARGS`` in a subprocess, as a user runs it; it must succeed."""
    env = {**os.environ, "PYTHONPATH": REPO}
    env["XLA_FLAGS"] = xla_flags(8)
    result = subprocess.run(
        [sys.executable, "-m", "ssl_jax.train", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def final_params(workdir):
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=3)
    raw = checkpoints.restore_raw(checkpoints.latest_step())
    checkpoints.close()
    return raw["params"], raw["batch_stats"], int(raw["step"])


def test_run_writes_logs_checkpoints_and_a_loadable_encoder(tmp_path, digits):
    config = write_config(tmp_path, num_steps=6, checkpoint_every=3, keep_checkpoints=1)
    workdir = str(tmp_path / "run")
    run_cli("--config", config, "--workdir", workdir, "--config.optim.lr=0.002")
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["optim"]["lr"] == 0.002
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 6]
    assert {"step", "loss", "lr", "steps_per_sec"} <= set(records[-1])
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert Checkpoints(os.path.join(workdir, "checkpoints"), keep=1).all_steps() == [6]

    encoder = load_encoder(workdir)
    images = digits.test_images[:50].astype(np.float32) / 255.0
    features = encoder.embed(images)
    assert features.shape == (50, 2 * 2 * 16)  # the flattened 2×2×16 map of an 8×8 input
    assert features.dtype == np.float32 and np.all(np.isfinite(features))
    layers = encoder.layers(images)
    assert list(layers) == ["stage1", "stage2", "features"]
    np.testing.assert_allclose(layers["features"], features, rtol=1e-6)
    # Batching is internal: a different batch size gives the same embeddings.
    encoder.batch_size = 7
    np.testing.assert_allclose(encoder.embed(images), features, rtol=1e-5, atol=1e-6)
    # The checkpoints/ directory works as well as the workdir.
    same = load_encoder(os.path.join(workdir, "checkpoints")).embed(images)
    np.testing.assert_array_equal(same, features)


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_a_partial_save_is_never_taken_as_latest(tmp_path, digits):
    config = write_config(tmp_path, num_steps=3, checkpoint_every=3)
    workdir = str(tmp_path / "run")
    assert train.main(["--config", config, "--workdir", workdir]) == 0
    # What a save killed half-way leaves: a temporary directory with a later step number.
    partial = os.path.join(workdir, "checkpoints", "9.orbax-checkpoint-tmp-1234")
    os.makedirs(os.path.join(partial, "state"))
    with open(os.path.join(partial, "state", "garbage"), "w") as f:
        f.write("truncated")
    assert load_encoder(workdir).step == 3


def error_line(capsys, argv) -> str:
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("error: ")
    return err


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("--config.objective.name=simclrr", "unknown objective 'simclrr'. Did you mean 'simclr'"),
        ("--config.dataset=mnist_subsett", "unknown dataset 'mnist_subsett'. Did you mean"),
        ("--config.model.name=resnet_18", "unknown model 'resnet_18'."),
        ("--config.optim.learning_rate=0.1", "optim has no field 'learning_rate'"),
        ("--config.batch_size=30", "batch_size 30 is not divisible by the 8 devices"),
        ("--config.model.widths=(8, 16, 32, 64)", "needs images of at least 16×16×C"),
        ("--config.dataset=npz:/nonexistent.npz", "does not exist"),
        ("--config.readout.l2_grid=(0.1, 0.0)", "readout.l2_grid must be a tuple of positive"),
    ],
)
def test_user_errors_are_one_clear_line(override, expected, tmp_path, capsys):
    config = write_config(tmp_path, num_devices=0)
    err = error_line(capsys, ["--config", config, "--workdir", str(tmp_path / "w"), override])
    assert expected in err


def test_npz_errors_name_the_problem(tmp_path, capsys):
    config = write_config(tmp_path)
    no_images = tmp_path / "no_images.npz"
    np.savez(no_images, pictures=np.zeros((4, 8, 8), np.uint8))
    mismatched = tmp_path / "mismatched.npz"
    np.savez(mismatched, images=np.zeros((40, 8, 8), np.uint8), labels=np.zeros(39, np.int64))
    workdir = str(tmp_path / "w")
    err = error_line(
        capsys, ["--config", config, "--workdir", workdir, f"--config.dataset=npz:{no_images}"]
    )
    assert "has no 'images', 'tokens' or 'audio' array (found: pictures)" in err
    err = error_line(
        capsys, ["--config", config, "--workdir", workdir, f"--config.dataset=npz:{mismatched}"]
    )
    assert "'labels' has 39 entries but 'images' has 40 examples" in err
    objects = tmp_path / "objects.npz"
    np.savez(objects, images=np.zeros((40, 8, 8), np.uint8), labels=np.array([None] * 40))
    err = error_line(
        capsys, ["--config", config, "--workdir", workdir, f"--config.dataset=npz:{objects}"]
    )
    assert "'labels' holds Python objects (dtype=object)" in err


def test_user_npz_trains(tmp_path, digits):
    path = tmp_path / "mine.npz"
    np.savez(path, images=digits.train_images[:300, :, :, 0], labels=digits.train_labels[:300])
    config = write_config(tmp_path, num_steps=2, dataset=f"npz:{path}")
    assert train.main(["--config", config, "--workdir", str(tmp_path / "run")]) == 0
    assert load_encoder(str(tmp_path / "run")).image_shape == (8, 8, 1)


def test_resume_with_a_different_config_is_refused(tmp_path, capsys):
    config = write_config(tmp_path, num_steps=2, checkpoint_every=2)
    workdir = str(tmp_path / "run")
    assert train.main(["--config", config, "--workdir", workdir]) == 0
    err = error_line(
        capsys, ["--config", config, "--workdir", workdir, "--resume", "--config.optim.b1=0.5"]
    )
    assert "holds a run with a different config (differs in optim.b1)" in err
    err = error_line(capsys, ["--config", config, "--workdir", workdir])
    assert "already holds a run (checkpoint at step 2); pass --resume" in err


def test_a_run_saved_before_newer_config_fields_existed_resumes(tmp_path, capsys):
    config = write_config(tmp_path, num_steps=2, checkpoint_every=2)
    workdir = str(tmp_path / "run")
    assert train.main(["--config", config, "--workdir", workdir]) == 0
    with open(os.path.join(workdir, "config.json")) as f:
        saved = json.load(f)
    del saved["data"], saved["readout"]["max_train_examples"]  # fields of later versions
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(saved, f)
    # A real difference is still refused, and the missing fields are not reported as one.
    argv = ["--config", config, "--workdir", workdir, "--resume"]
    err = error_line(capsys, [*argv, "--config.optim.b1=0.5"])
    assert "(differs in optim.b1)" in err
    assert train.main(argv) == 0


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    config = write_config(tmp_path, "toy_nan_after", num_steps=8, checkpoint_every=2, log_every=1)
    workdir = str(tmp_path / "run")
    err = error_line(capsys, ["--config", config, "--workdir", workdir])
    assert "training diverged: the loss is nan at step 5" in err
    assert "the last good checkpoint is step 4" in err
    params, _, step = final_params(workdir)
    assert step == 4
    assert all(np.all(np.isfinite(x)) for x in jax_leaves(params))
