"""Many devices equal one, shown so that it cannot be luck: the float64 exactness mode.

SimCLR, the autoencoder and the two-group (GAN-shaped) toy each take 20 AdamW steps from 3
seeds, as 1 process × 1 device, 1 process × 8 devices and 2 processes × 4 devices; their losses
and every leaf of the final state (parameters, batch statistics, optimizer and objective state)
agree to 1e-9 relative. In float32 the same runs part after a few steps (reduction order
differs across device counts; see README), which is why the check needs float64.
"""

import os
import subprocess
import sys

import numpy as np
import portpicker
import pytest

from tests.configs import REPO, xla_flags

OBJECTIVES = "simclr,autoencoder,toy_alternating"
SEEDS = "0,1,2"


def worker(out, devices_per_process, *args):
    env = {**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": xla_flags(devices_per_process)}
    command = [sys.executable, "-m", "tests.exactness_worker", out, "--objectives", OBJECTIVES]
    return subprocess.Popen(
        [*command, "--seeds", SEEDS, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("exact")
    single, pair = str(root / "single.npz"), str(root / "pair.npz")
    port = portpicker.pick_unused_port()
    distributed = ["--coordinator", f"127.0.0.1:{port}", "--num_processes", "2"]
    processes = [
        worker(single, 8, "--devices", "1,8"),
        *(worker(pair, 4, "--devices", "0", *distributed, "--process_id", str(i)) for i in (0, 1)),
    ]
    for process in processes:
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
    return np.load(single), np.load(pair)


@pytest.mark.parametrize("objective", OBJECTIVES.split(","))
def test_eight_devices_and_two_processes_equal_one_device_to_1e9(runs, objective):
    single, pair = runs
    for seed in SEEDS.split(","):
        reference = f"{objective}|1|{seed}|"
        names = [k[len(reference) :] for k in single.files if k.startswith(reference)]
        assert "losses" in names and any("opt_state" in n for n in names)
        for other, tag in ((single, f"{objective}|8|{seed}|"), (pair, f"{objective}|8|{seed}|")):
            for name in names:
                want, got = single[reference + name], other[tag + name]
                assert got.dtype == want.dtype
                if want.dtype.kind != "f":
                    np.testing.assert_array_equal(got, want, err_msg=name)
                    continue
                assert want.dtype == np.float64, name
                scale = float(np.max(np.abs(want))) if want.size else 0.0
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale, err_msg=name)
        # The runs learnt something: the loss moved over the 20 steps.
        losses = single[reference + "losses"]
        assert len(losses) == 20 and losses[0] != losses[-1]
