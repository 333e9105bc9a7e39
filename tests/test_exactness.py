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


def worker(out, devices_per_process, *args, objectives=OBJECTIVES):
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
        # Relative to the leaf's largest value, but never below 1e-10 absolute: a leaf whose
        # gradient is zero in exact arithmetic (BYOL's projector output bias, which the
        # predictor's batch norm removes) holds only rounding noise, up to about 2e-11 after
        # 20 Adam steps, different on every device count.
        scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 0.1)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale, err_msg=name)
    # The runs learnt something: the loss moved over the 20 steps.
    losses = single[reference + "losses"]
    assert len(losses) == 20 and losses[0] != losses[-1]


@pytest.mark.parametrize("objective", OBJECTIVES.split(","))
def test_eight_devices_and_two_processes_equal_one_device_to_1e9(runs, objective):
    single, pair = runs
    for seed in SEEDS.split(","):
        assert_equal_to_1e9(single, single, objective, seed)
        assert_equal_to_1e9(single, pair, objective, seed)


# The multi-view objectives, whose state spans the global batch (queues, centres, EMA targets,
# batch-wide cross-correlations): 1 device against 8, in two worker processes side by side.
MULTIVIEW = (("byol",), ("moco_v2",))


@pytest.fixture(scope="module")
def multiview_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("exact_multiview")
    outs = [str(root / f"part{i}.npz") for i in range(len(MULTIVIEW))]
    processes = [
        worker(out, 8, "--devices", "1,8", objectives=",".join(names))
        for out, names in zip(outs, MULTIVIEW, strict=True)
        if names
    ]
    for process in processes:
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
    merged = {}
    for out, names in zip(outs, MULTIVIEW, strict=True):
        if names:
            results = np.load(out)
            merged.update({k: results[k] for k in results.files})
    return merged


@pytest.mark.parametrize("objective", [name for part in MULTIVIEW for name in part])
def test_multiview_objectives_on_eight_devices_equal_one_to_1e9(multiview_runs, objective):
    for seed in SEEDS.split(","):
        assert_equal_to_1e9(multiview_runs, multiview_runs, objective, seed)
