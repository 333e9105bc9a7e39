"""Similar-image search with autoencoder codes against raw pixels (notes 004): precision@k on
the held-out split of the MNIST subset, each held-out digit querying the other 999.

    python benchmarks/image_search.py [--config experiments/autoencoder_mnist.py]
        [--set num_steps=500 ...] [--ks 1,10,50]

Trains the config as ``python -m ssl_jax.train`` would (readout off), then retrieves by cosine
similarity with: the raw pixels; the encoder's features and the bottleneck code at the
network's random initialisation; and the same after training. Prints a markdown table.
"""

import argparse
import os
import tempfile
import time

import jax
import numpy as np

from ssl_jax.checkpoint import Checkpoints
from ssl_jax.config import apply_overrides, load_config
from ssl_jax.data import load_dataset
from ssl_jax.data.spec import decoded_spec, sample_batch
from ssl_jax.evaluation import precision_at_k
from ssl_jax.models import build_encoder
from ssl_jax.objectives import make_objective
from ssl_jax.objectives.base import module_representation
from ssl_jax.train import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def features_and_codes(config, spec, params, stats, images):
    """The encoder's features and the bottleneck code of ``images`` (inference mode)."""
    encoder = module_representation(build_encoder(config.model, spec["images"])).fn
    h = np.concatenate(
        [
            np.asarray(encoder(params, stats, images[i : i + 500]))
            for i in range(0, len(images), 500)
        ]
    )
    bottleneck = params["bottleneck"]
    return h, h @ np.asarray(bottleneck["kernel"]) + np.asarray(bottleneck["bias"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default=os.path.join(REPO, "experiments", "autoencoder_mnist.py")
    )
    parser.add_argument("--set", nargs="*", default=[], help="config overrides")
    parser.add_argument("--ks", default="1,10,50")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    config = load_config(args.config)
    apply_overrides(config, ["readout.enabled=False", *args.set])
    workdir = args.workdir or tempfile.mkdtemp(prefix="image_search_")
    start = time.perf_counter()
    train(config, workdir)
    wall = time.perf_counter() - start
    dataset = load_dataset(config.dataset, config.data.to_dict())
    images = dataset.decoded("test", "images")
    labels = dataset.decoded("test", "labels")
    ks = tuple(int(k) for k in args.ks.split(","))
    spec = decoded_spec(dataset.spec)
    objective = make_objective(config, spec)
    params, stats, _ = objective.init(jax.random.PRNGKey(config.seed + 1), sample_batch(spec))
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=1, read_only=True)
    restored = checkpoints.restore_modules(checkpoints.latest_step(), ("encoder", "bottleneck"))
    random_h, random_code = features_and_codes(config, spec, params, stats, images)
    trained_h, trained_code = features_and_codes(
        config, spec, restored["params"], restored["batch_stats"], images
    )
    rows = {
        f"raw pixels ({images[0].size})": images.reshape(len(images), -1),
        f"encoder features ({trained_h.shape[1]}), random init": random_h,
        f"bottleneck code ({trained_code.shape[1]}), random init": random_code,
        f"encoder features ({trained_h.shape[1]}), trained": trained_h,
        f"bottleneck code ({trained_code.shape[1]}), trained": trained_code,
    }
    print(
        f"{config.objective.name}, {config.num_steps} steps ({wall / 60:.1f} min); "
        f"{len(images)} held-out queries, leave-one-out, cosine\n"
    )
    print("| retrieval by | " + " | ".join(f"P@{k}" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    for name, x in rows.items():
        precision = precision_at_k(x, labels, ks=ks)["precision"]
        print(f"| {name} | " + " | ".join(f"{precision[k]:.3f}" for k in ks) + " |")


if __name__ == "__main__":
    main()
