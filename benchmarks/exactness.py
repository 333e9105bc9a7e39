"""Many devices equal one, for objectives outside the suite's exactness test: 8 devices against
1 in the float64 exactness mode, and the largest difference of each objective's state.

    python benchmarks/exactness.py colorization,split_brain,bert_mlm [--seeds 0,1,2] [--steps 20]

Runs `tests.exactness_worker` (20 AdamW steps of each objective's tiny config, per seed, on 1
and on 8 fake CPU devices) in a process of its own for each objective, then compares every
saved leaf of the final state, losses included, with the rule of tests/test_exactness.py:
|8-device − 1-device| within 1e-9 relative, or 1e-9 of the leaf's largest magnitude (at least
1e-9 absolute). Prints a markdown row per objective: the largest difference relative to its
leaf's scale, the leaf it is in, and whether every leaf passes.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compare(results, objective: str, seeds) -> tuple[float, str, bool]:
    worst, where, passed = 0.0, "", True
    for seed in seeds:
        reference = f"{objective}|1|{seed}|"
        for key in (k for k in results.files if k.startswith(reference)):
            name = key[len(reference) :]
            want, got = results[key], results[f"{objective}|8|{seed}|{name}"]
            if want.dtype.kind != "f":
                passed &= bool(np.array_equal(want, got))
                continue
            scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1.0)
            passed &= bool(np.allclose(got, want, rtol=1e-9, atol=1e-9 * scale))
            difference = float(np.max(np.abs(got - want))) / scale if want.size else 0.0
            if difference > worst:
                worst, where = difference, name
    return worst, where, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("objectives")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    sys.path.insert(0, REPO)
    from tests.configs import xla_flags

    root = tempfile.mkdtemp(prefix="exactness_")
    env = {**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": xla_flags(8)}
    print("| objective | largest difference / leaf scale | in | all leaves within 1e-9 |")
    print("|---|---|---|---|", flush=True)
    for objective in args.objectives.split(","):  # a process each: one failure loses one row
        out = os.path.join(root, f"{objective}.npz")
        command = [sys.executable, "-m", "tests.exactness_worker", out, "--objectives"]
        command += [objective, "--devices", "1,8", "--seeds", args.seeds]
        command += ["--steps", str(args.steps)]
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"| {objective} | failed: {last} | | no |", flush=True)
            continue
        worst, where, passed = compare(np.load(out), objective, args.seeds.split(","))
        print(
            f"| {objective} | {worst:.1e} | `{where}` | {'yes' if passed else 'no'} |", flush=True
        )


if __name__ == "__main__":
    main()
