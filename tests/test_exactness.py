"""Many devices equal one, shown so that it cannot be luck: the float64 exactness mode.

Each objective takes 20 AdamW steps from 3 seeds as 1 process × 1 device and 1 process × 8
devices, and SimCLR also as 2 processes × 4 devices; their losses and every leaf of the final
state (parameters, batch statistics, optimizer and objective state) agree to 1e-9 relative.
In float32 the same runs part after a few steps (reduction order differs across device
counts; see README), which is why the check needs float64.

The objectives: SimCLR, the autoencoder and the two-group (GAN-shaped) toy, and the
multi-view objectives whose state spans the global batch in each of its kinds: an EMA target
with its own batch statistics (BYOL), a FIFO queue of every device's keys (MoCo v2), and a
teacher with a centre over the global crops of the global batch (DINO). The other
objectives' own tests show on 8 devices that their losses are those of the whole global
batch. Two processes are one mechanism whatever the objective, so SimCLR alone runs as two.
"""

import os
import subprocess
import sys

import numpy as np
import portpicker
import pytest

from tests.configs import REPO, xla_flags

# Each group runs in a worker process of its own, side by side.
GROUPS = (("simclr", "autoencoder", "toy_alternating"), ("byol", "moco_v2", "dino"))
OBJECTIVES = [name for group in GROUPS for name in group]
SEEDS = "0,1,2"


def worker(out, devices_per_process, objectives, *args):
    env = {**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": xla_flags(devices_per_process)}
    command = [sys.executable, "-m", "tests.exactness_worker", out, "--objectives", objectives]
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
    """(the 1- and 8-device runs of every objective, SimCLR's 2-process run)."""
    root = tmp_path_factory.mktemp("exact")
    singles = [str(root / f"single{i}.npz") for i in range(len(GROUPS))]
    pair = str(root / "pair.npz")
    port = portpicker.pick_unused_port()
    distributed = ["--coordinator", f"127.0.0.1:{port}", "--num_processes", "2"]
    processes = [
        *(
            worker(out, 8, ",".join(group), "--devices", "1,8")
            for out, group in zip(singles, GROUPS, strict=True)
        ),
        *(
            worker(pair, 4, "simclr", "--devices", "0", *distributed, "--process_id", str(i))
            for i in (0, 1)
        ),
    ]
    for process in processes:
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
    single = {}
    for out in singles:
        results = np.load(out)
        single.update({k: results[k] for k in results.files})
    return single, np.load(pair)


def assert_equal_to_1e9(single, other, objective, seed):
    """Every saved leaf of the 8-device run in ``other`` equals the 1-device run's."""
    reference = f"{objective}|1|{seed}|"
    names = [k[len(reference) :] for k in single if k.startswith(reference)]
    assert "losses" in names and any("opt_state" in n for n in names)
    tag = f"{objective}|8|{seed}|"
    for name in names:
        want, got = single[reference + name], other[tag + name]
        assert got.dtype == want.dtype
        if want.dtype.kind != "f":
            np.testing.assert_array_equal(got, want, err_msg=name)
            continue
        assert want.dtype == np.float64, name
        # Relative to the leaf's largest value, but never below 1e-9 absolute: a leaf whose
        # gradient is zero in exact arithmetic holds only rounding noise, different on every
        # device count — BYOL's and Barlow Twins' projector output bias, which the batch norm
        # or the batch standardisation after it removes, reach about 1e-10 after 20 Adam
        # steps (Adam scales a 1e-17 gradient up to a step of lr·g/(√v + ε)).
        scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1.0)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale, err_msg=name)
    # The runs learnt something: the loss moved over the 20 steps.
    losses = single[reference + "losses"]
    assert len(losses) == 20 and losses[0] != losses[-1]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_eight_devices_equal_one_device_to_1e9(runs, objective):
    single, _ = runs
    for seed in SEEDS.split(","):
        assert_equal_to_1e9(single, single, objective, seed)


def test_two_processes_of_four_devices_equal_one_device_to_1e9(runs):
    single, pair = runs
    for seed in SEEDS.split(","):
        assert_equal_to_1e9(single, pair, "simclr", seed)
