"""The β sweep of the variational information bottleneck (docs/compression.md): held-out
accuracy against the bound on I(Z; X), one training run per β.

    python benchmarks/information_bottleneck.py [--betas 0,1e-3,1e-2,1e-1,1] [--set num_steps=500]

Each β trains experiments/vib_mnist.py as ``python -m ssl_jax.train`` would (readout
included: kNN and the linear probe of μ beside random init). Then, on the held-out split, with
batch norm in inference mode: the classifier's accuracy at z = μ, the rate E_x KL(p(z|x) ‖
N(0, I)) in nats (the upper bound on I(Z; X)), and H(Y) − E[−log q(y|z)] with z sampled (the
lower bound on I(Z; Y), H(Y) the empirical label entropy), and the classifier's accuracy at
one sampled z per image. Prints a markdown row per β.
"""

import argparse
import os
import tempfile
import time

import jax
import numpy as np
import optax

from ssl_jax.checkpoint import Checkpoints
from ssl_jax.config import apply_overrides, load_config
from ssl_jax.data import load_dataset
from ssl_jax.data.spec import decoded_spec
from ssl_jax.latent import gaussian_kl, reparameterize, split_gaussian
from ssl_jax.objectives import make_objective
from ssl_jax.train import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def held_out_figures(config, dataset, workdir):
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=1, read_only=True)
    modules = ("encoder", "posterior", "classifier")
    restored = checkpoints.restore_modules(checkpoints.latest_step(), modules)
    params, stats = restored["params"], restored["batch_stats"]
    features = make_objective(config, decoded_spec(dataset.spec)).representations["encoder"].fn
    images = dataset.decoded("test", "images")
    labels = dataset.decoded("test", "labels")

    @jax.jit
    def terms(x, y, key):
        h = features(params, stats, x)
        post, cls = params["posterior"], params["classifier"]
        mean, log_variance = split_gaussian(h @ post["kernel"] + post["bias"])
        at_mean = mean @ cls["kernel"] + cls["bias"]
        sampled = reparameterize(key, mean, log_variance) @ cls["kernel"] + cls["bias"]
        cross_entropy = optax.softmax_cross_entropy_with_integer_labels(sampled, y)
        correct = (at_mean.argmax(-1) == y, sampled.argmax(-1) == y)
        return correct, gaussian_kl(mean, log_variance), cross_entropy

    parts = [
        terms(images[i : i + 500], labels[i : i + 500], jax.random.PRNGKey(i))
        for i in range(0, len(images), 500)
    ]
    at_mean = np.concatenate([p[0][0] for p in parts])
    sampled = np.concatenate([p[0][1] for p in parts])
    rate = np.concatenate([p[1] for p in parts])
    cross_entropy = np.concatenate([p[2] for p in parts])
    frequencies = np.bincount(labels) / len(labels)
    entropy = -np.sum(frequencies[frequencies > 0] * np.log(frequencies[frequencies > 0]))
    return at_mean.mean(), sampled.mean(), rate.mean(), entropy - cross_entropy.mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", default="0,1e-3,1e-2,1e-1,1")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    root = args.workdir or tempfile.mkdtemp(prefix="vib_sweep_")
    print(
        "| β | steps | wall | held-out accuracy at μ / at sampled z | I(Z; X) ≤ rate (nats) | "
        "I(Z; Y) ≥ (nats) | μ: kNN / linear (trained; random init) |\n|---|---|---|---|---|---|---|"
    )
    for beta in args.betas.split(","):
        config = load_config(os.path.join(REPO, "experiments", "vib_mnist.py"))
        apply_overrides(config, [f"objective.beta={float(beta)}", *args.set])
        workdir = os.path.join(root, f"beta_{beta}")
        start = time.perf_counter()
        scores = train(config, workdir)["representations"]["mu"]["labels"]
        wall = time.perf_counter() - start
        dataset = load_dataset(config.dataset, config.data.to_dict())
        at_mean, sampled, rate, relevance = held_out_figures(config, dataset, workdir)
        knn, linear = scores["knn"], scores["linear"]
        print(
            f"| {beta} | {config.num_steps} | {wall / 60:.1f} min | {at_mean:.3f} / {sampled:.3f} "
            f"| {rate:.1f} "
            f"| {relevance:.2f} | {knn['trained']:.3f} / {linear['trained']:.3f} "
            f"({knn['random_init']:.3f} / {linear['random_init']:.3f}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
