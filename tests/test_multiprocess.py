"""Multi-process training on JAX's distributed runtime, two processes on this machine."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import portpicker

from ssl_jax import train
from tests.configs import REPO, xla_flags
from tests.test_cli_and_checkpoints import final_params, write_config


def launch(config, workdir, devices, *extra):
    env = {**os.environ, "PYTHONPATH": REPO}
    env["XLA_FLAGS"] = xla_flags(devices)
    return subprocess.Popen(
        [sys.executable, "-m", "ssl_jax.train", "--config", config, "--workdir", workdir, *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def launch_pair(config, workdir, *extra):
    port = portpicker.pick_unused_port()
    return [
        launch(
            config,
            workdir,
            4,
            "--coordinator",
            f"127.0.0.1:{port}",
            "--num_processes",
            "2",
            "--process_id",
            str(i),
            *extra,
        )
        for i in range(2)
    ]


def finish(processes, timeout=300):
    outputs = [p.communicate(timeout=timeout) for p in processes]
    for p, (_, err) in zip(processes, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    return outputs


def test_two_processes_match_one_process_of_eight_and_of_one_device(tmp_path):
    config = write_config(tmp_path, "toy_ema_queue", num_steps=3, checkpoint_every=3, num_devices=0)
    os.makedirs(tmp_path / "single")
    one_device = write_config(tmp_path / "single", "toy_ema_queue", num_steps=3, checkpoint_every=3)
    runs = {name: str(tmp_path / name) for name in ("two_by_four", "one_by_eight", "one_by_one")}
    outputs = finish(launch_pair(config, runs["two_by_four"]))
    # Only process 0 logs.
    assert "mesh: 8 device(s)" in outputs[0][0] and "step 3" in outputs[0][0]
    assert "mesh:" not in outputs[1][0] and "step " not in outputs[1][0]
    # The references run in this process, which has 8 devices: all of them, or the first.
    assert train.main(["--config", config, "--workdir", runs["one_by_eight"]]) == 0
    assert train.main(["--config", one_device, "--workdir", runs["one_by_one"]]) == 0

    reference = final_params(runs["one_by_one"])
    for name in ("two_by_four", "one_by_eight"):
        got = final_params(runs[name])
        assert got[2] == reference[2] == 3
        for a, b in zip(jax.tree.leaves(got[:2]), jax.tree.leaves(reference[:2]), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_dead_process_makes_the_other_exit_with_an_error(tmp_path):
    config = write_config(tmp_path, "toy_slow", num_steps=400, checkpoint_every=1000, num_devices=0)
    first, second = launch_pair(config, str(tmp_path / "run"), "--heartbeat_timeout", "5")
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(tmp_path / "run" / "metrics.jsonl"):
        time.sleep(0.2)
    time.sleep(1.0)
    second.send_signal(signal.SIGKILL)
    start = time.time()
    _, err = first.communicate(timeout=120)
    assert first.returncode != 0
    assert time.time() - start < 90
    assert err.strip(), "the surviving process should say why it stopped"
