"""β-VAE against the VAE (β = 1) on the generated-factors dataset: the MIG of the posterior mean
(docs/compression.md; Higgins et al. 2017, Chen et al. 2018).

    python benchmarks/beta_vae_mig.py [--betas 1,4] [--seeds 0,1] [--steps 1500]

Renders ``--train`` images of `ssl_jax.data.shapes.Shapes` at 32×32 (factors shape 3, scale 6,
orientation 10, x 16, y 16, sampled uniformly with seed 0), saves them as an ``.npz`` dataset,
and trains experiments/vae_mnist.py's VAE on them (a 10-dimensional code, the same small CNN
and MLP decoder, Bernoulli pixels) once per β and seed, as ``python -m ssl_jax.train`` would,
without the readout. Then it embeds 10,000 freshly rendered images (seed 1) at μ through
``load_encoder(workdir, name="mu")`` and prints a markdown row per run: β, seed, steps, wall,
MIG, each factor's gap, and the active units (Var[μ_j] > 0.01).
"""

import argparse
import os
import tempfile
import time

import numpy as np

from ssl_jax.config import load_config
from ssl_jax.data.shapes import Shapes
from ssl_jax.encoder import load_encoder
from ssl_jax.evaluation.disentanglement import mig_details
from ssl_jax.latent import active_units
from ssl_jax.train import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = dict(image_size=32, factor_sizes=(3, 6, 10, 16, 16))


def write_dataset(path: str, num: int) -> Shapes:
    shapes = Shapes(**SHAPES)
    factors, images = shapes.sample(num, np.random.default_rng(0))
    # The readout is off; "labels" (the shape) only gives the split its strata.
    np.savez(path, images=images, labels=factors[:, 0].astype(np.int32))
    return shapes


def vae_config(dataset: str, beta: float, seed: int, steps: int):
    c = load_config(os.path.join(REPO, "experiments", "vae_mnist.py"))
    c.dataset = f"npz:{dataset}"
    c.seed = seed
    c.num_steps = steps
    c.checkpoint_every = steps
    c.log_every = max(1, steps // 5)
    c.objective.latent_dim = 10
    c.objective.beta = beta
    c.objective.binarize = False  # the images are already binary
    c.readout.enabled = False
    return c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", default="1,4")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--train", type=int, default=20_000)
    parser.add_argument("--workdir", default="")
    args = parser.parse_args()
    root = args.workdir or tempfile.mkdtemp(prefix="beta_vae_mig_")
    os.makedirs(root, exist_ok=True)
    dataset = os.path.join(root, "shapes32.npz")
    shapes = write_dataset(dataset, args.train)
    factors, images = shapes.sample(10_000, np.random.default_rng(1))
    print(
        "| β | seed | steps | wall (2 CPU cores) | MIG | gap per factor (shape, scale, "
        "orientation, x, y) | active units |\n|---|---|---|---|---|---|---|"
    )
    for beta in (float(b) for b in args.betas.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            workdir = os.path.join(root, f"beta{beta:g}_seed{seed}")
            start = time.perf_counter()
            train(vae_config(dataset, beta, seed, args.steps), workdir)
            wall = time.perf_counter() - start
            mu = load_encoder(workdir, name="mu").embed(images)
            details = mig_details(mu, factors)
            gaps = ", ".join(f"{g:.3f}" for g in details["mig_per_factor"])
            print(
                f"| {beta:g} | {seed} | {args.steps} | {wall / 60:.1f} min | "
                f"{details['mig']:.3f} | {gaps} | {int(active_units(mu))}/10 |",
                flush=True,
            )


if __name__ == "__main__":
    main()
