"""What a float32 user gets on different device counts: the main job from several seeds on 1
device and on 8 (fake CPU devices, one program over an 8-device mesh), read out the same way.

    python benchmarks/device_spread.py [--config experiments/simclr_mnist.py] [--seeds 0,1,2]
        [--devices 1,8] [--jobs 1] [--set num_steps=500 ...]

Each run is its own ``python -m ssl_jax.train`` process (``XLA_FLAGS`` sets the device count
before JAX starts). The global batch, data order and seeds are the same on both device
counts; float32 reductions over the batch run in another order, so the runs part after a few
steps. The table gives kNN and linear accuracy per run and, per device count, the mean and
spread (max − min) over the seeds. ``--jobs`` runs that many trainings side by side (on a
machine with cores to spare); the figures do not depend on it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor


def run(config: str, seed: int, devices: int, overrides: list[str], root: str) -> dict:
    workdir = os.path.join(root, f"seed{seed}_dev{devices}")
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    command = [
        sys.executable, "-m", "ssl_jax.train", "--config", config, "--workdir", workdir,
        f"--config.seed={seed}", f"--config.num_devices={devices}",
        *(f"--config.{o}" for o in overrides),
    ]  # fmt: skip
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(workdir, "readout.json")) as f:
        scores = json.load(f)["representations"]["encoder"]["labels"]
    result = {p: scores[p]["trained"] for p in ("knn", "linear")}
    print(f"devices {devices}, seed {seed}: {result}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/simclr_mnist.py")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--devices", default="1,8")
    parser.add_argument("--jobs", type=int, default=1, help="trainings run side by side")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, a.b=value")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="device_spread_")
    seeds = [int(s) for s in args.seeds.split(",")]
    device_counts = [int(d) for d in args.devices.split(",")]
    runs = [(devices, seed) for devices in device_counts for seed in seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run, args.config, s, d, args.set, root) for d, s in runs]
        results = dict(zip(runs, (f.result() for f in futures), strict=True))
    print("| devices | seed | kNN | linear |\n| --- | --- | --- | --- |")
    summary = {}
    for (devices, seed), result in results.items():
        summary.setdefault(devices, []).append(result)
        print(f"| {devices} | {seed} | {result['knn']:.4f} | {result['linear']:.4f} |")
    print("\n| devices | kNN mean (spread) | linear mean (spread) |\n| --- | --- | --- |")
    for devices, results in summary.items():
        cells = []
        for protocol in ("knn", "linear"):
            values = [r[protocol] for r in results]
            cells.append(f"{statistics.mean(values):.4f} ({max(values) - min(values):.4f})")
        print(f"| {devices} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
