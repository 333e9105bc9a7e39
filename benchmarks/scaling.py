"""Weak scaling of the SimCLR step: images/s on 1, 2, 4, 8 devices at a fixed per-device batch.

    python benchmarks/scaling.py [--model resnet18] [--per_device_batch 32]

Efficiency(n) = images/s on n devices / (n × images/s on 1 device). Without an accelerator
the devices are fake CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=8) that
share the same cores, so the CPU figure measures the partitioning overhead, not a speed-up:
ideal there is a flat images/s, i.e. efficiency 1/n.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def measure_in_subprocess(model, batch, dtype, steps, devices):
    code = (
        f"import json, sys; sys.path.insert(0, {HERE!r}); from train_throughput import measure; "
        f"print(json.dumps(measure({model!r}, {batch}, {dtype!r}, {steps}, num_devices={devices})))"
    )
    env = dict(os.environ)
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--per_device_batch", type=int, default=32)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    base = None
    print(f"{'devices':>8}{'global batch':>14}{'images/s':>12}{'efficiency':>12}")
    for devices in (1, 2, 4, 8):
        batch = args.per_device_batch * devices
        r = measure_in_subprocess(args.model, batch, args.dtype, args.steps, devices)
        base = base or r["images_per_sec"]
        efficiency = r["images_per_sec"] / (devices * base)
        print(f"{devices:>8}{batch:>14}{r['images_per_sec']:>12.1f}{efficiency:>12.2f}")
    print(f"device kind: {r['device_kind']}")


if __name__ == "__main__":
    main()
