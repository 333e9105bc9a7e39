"""Writes the pretraining set of the transfer protocol: the MNIST subset's digits 0–4.

    python experiments/transfer_data.py --out runs/transfer/mnist_0to4.npz
    python -m ssl_jax.train --config experiments/supervised_mnist.py --workdir runs/sup_0to4 \
        --config.dataset=npz:runs/transfer/mnist_0to4.npz --config.objective.num_classes=5
    python experiments/protocol_comparison.py --workdir runs/sup_0to4 \
        --dataset mnist_subset --classes 5,6,7,8,9

Only the training split's images of the pretraining classes are written, so neither the
held-out images nor any image of the probed classes 5–9 is seen in pretraining; the probe
then runs on the MNIST subset's own train / test split restricted to 5–9, labels renumbered
0–4 (`ssl_jax.evaluation.transfer.class_subset`).
"""

import argparse
import os

from ssl_jax.data import load_dataset
from ssl_jax.evaluation.transfer import class_subset, save_npz


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/transfer/mnist_0to4.npz")
    parser.add_argument("--dataset", default="mnist_subset")
    parser.add_argument("--classes", default="0,1,2,3,4")
    args = parser.parse_args(argv)
    classes = [int(c) for c in args.classes.split(",")]
    subset = class_subset(load_dataset(args.dataset), classes)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_npz(subset, args.out, splits=("train",))
    print(f"wrote {len(subset.train_images)} images of classes {classes} to {args.out}")


if __name__ == "__main__":
    main()
