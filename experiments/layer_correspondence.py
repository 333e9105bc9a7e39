"""Layer-correspondence sanity check of similarity metrics (Kornblith et al. 2019 §6.1; notes
001 §2.2.3).

Trains several Tiny-10 CNNs that differ only in their random seed on the MNIST subset, extracts
every layer's representation of the same held-out examples, and asks of each metric: for a
layer of network A, is the most similar layer of network B its architectural counterpart? The
fraction of (A, B, layer) cases where it is, over all ordered pairs A != B, is printed beside
Kornblith et al.'s CIFAR-10 figures. Asymmetric metrics are symmetrised as S_AB + S_BAᵀ. The
logits layer is left out, as in the paper. A linear-CKA heatmap (layers × layers) is saved.

    python experiments/layer_correspondence.py                   # 5-6 minutes on 2 idle CPU cores
    python experiments/layer_correspondence.py --num-networks 10 --epochs 10 --conv-rules mean

The outputs (PNG, results.json) go to --out (default runs/layer_correspondence/).
"""

import argparse
import functools
import json
import os
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssl_jax import similarity as sim
from ssl_jax.data import load_dataset
from ssl_jax.errors import UserError
from ssl_jax.models.tiny10 import Tiny10

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv8", "pool")

# (row label, metric, options, symmetric) and Kornblith et al. 2019, Table 2 (CIFAR-10, %).
METRICS = (
    ("CCA (ρ̄)", "mean_cca_rho", {}, True),
    ("CCA (R²_CCA)", "r2_cca", {}, True),
    ("SVCCA (ρ̄)", "svcca", {"variance": 0.99}, True),
    ("PWCCA", "pwcca", {}, False),
    ("Linear regression", "r2_lr", {}, False),
    ("CKA (linear)", "linear_cka", {}, True),
    ("CKA (RBF 0.4)", "rbf_cka", {"bandwidth": 0.4}, True),
    ("CKA (linear, debiased)", "linear_cka", {"debiased": True}, True),
    ("RSA (Pearson)", "rsa", {}, True),
)
PAPER_CIFAR10 = {
    "CCA (ρ̄)": 1.4,
    "CCA (R²_CCA)": 10.6,
    "SVCCA (ρ̄)": 9.9,
    "PWCCA": 11.1,
    "Linear regression": 45.4,
    "CKA (linear)": 99.3,
    "CKA (RBF 0.4)": 99.1,
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/layer_correspondence", help="output directory")
    p.add_argument("--num-networks", type=int, default=5, help="networks (seeds) to train")
    p.add_argument("--epochs", type=float, default=3.0, help="training epochs per network")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--num-train", type=int, default=4000, help="training images (max 4000)")
    p.add_argument(
        "--num-examples", type=int, default=1000, help="held-out examples compared (max 1000)"
    )
    p.add_argument(
        "--conv-rules",
        default="flatten,mean",
        help="comma-separated rules turning conv maps into matrices (flatten = the paper's)",
    )
    p.add_argument("--metrics", default="all", help="comma-separated metric labels, or all")
    return p.parse_args(argv)


# --- Training ---------------------------------------------------------------------------------


def _images(ds_images):
    return jnp.asarray(ds_images, jnp.float32) / 255.0


def make_train_step(model, optimizer):
    """One jitted supervised step (cross-entropy, BN in training mode), shared by all seeds."""

    def loss_fn(params, batch_stats, images, labels):
        logits, updates = model.apply(
            {"params": params, "batch_stats": batch_stats},
            images,
            train=True,
            mutable=["batch_stats"],
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, updates["batch_stats"]

    @jax.jit
    def step(variables, opt_state, images, labels):
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            variables["params"], variables["batch_stats"], images, labels
        )
        updates, opt_state = optimizer.update(grads, opt_state, variables["params"])
        params = optax.apply_updates(variables["params"], updates)
        return {"params": params, "batch_stats": batch_stats}, opt_state, loss

    return step


def train_network(seed, model, optimizer, step, images, labels, args):
    """Trains one network from seed `seed` (init and data order); returns (variables, loss)."""
    key_init, key_order = jax.random.split(jax.random.key(seed))
    variables = model.init(key_init, images[:2], train=False)
    opt_state = optimizer.init(variables["params"])
    steps_per_epoch = max(1, len(images) // args.batch_size)
    num_steps = max(1, int(args.epochs * steps_per_epoch))
    for i in range(num_steps):
        if i % steps_per_epoch == 0:
            key_order, key = jax.random.split(key_order)
            order = np.asarray(jax.random.permutation(key, len(images)))
        rows = order[(i % steps_per_epoch) * args.batch_size :][: args.batch_size]
        variables, opt_state, loss = step(variables, opt_state, images[rows], labels[rows])
    return variables, float(loss)


def layer_activations(apply_fn, variables, images, batch_size=250):
    """{layer: np.ndarray [n, ...]} of the inference-mode network (BN running statistics)."""
    chunks = {}
    for start in range(0, len(images), batch_size):
        _, layers = apply_fn(variables, images[start : start + batch_size])
        for name, value in layers.items():
            chunks.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


# --- The sanity check ---------------------------------------------------------------------------


def correspondence(similarity, num_networks, num_layers, symmetric):
    """Fraction of (A, B != A, layer i) whose most similar layer of B is layer i.

    similarity: [N·L, N·L], network-major. A row whose counterpart entry is NaN (metric
    undefined there, e.g. degenerate CCA) counts as a miss. Returns (fraction, #undefined).
    """
    s = np.asarray(similarity, dtype=np.float64)
    if not symmetric:
        s = s + s.T  # block (A, B) becomes S_AB + S_BAᵀ
    hits = undefined = total = 0
    for a in range(num_networks):
        for b in range(num_networks):
            if a == b:
                continue
            block = s[a * num_layers : (a + 1) * num_layers, b * num_layers : (b + 1) * num_layers]
            for i, row in enumerate(block):
                total += 1
                if np.isnan(row[i]):
                    undefined += 1
                    continue
                hits += int(np.nanargmax(row) == i)
    return hits / total, undefined


def save_heatmap(matrix, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    image = ax.imshow(np.asarray(matrix), vmin=0.0, vmax=1.0, cmap="magma")
    ax.set_xticks(range(len(LAYERS)), LAYERS, rotation=90)
    ax.set_yticks(range(len(LAYERS)), LAYERS)
    ax.set_xlabel("network B layer")
    ax.set_ylabel("network A layer")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_table(results, rules, num_examples):
    header = ["metric"] + [f"{rule} (%)" for rule in rules] + ["paper CIFAR-10 (%)"]
    lines = [
        f"Layer correspondence, {num_examples} held-out MNIST examples",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for label in results[rules[0]]:
        cells = [label]
        for rule in rules:
            fraction, undefined = (
                results[rule][label]["accuracy"],
                results[rule][label]["undefined"],
            )
            cells.append(f"{100 * fraction:.1f}" + (f" ({undefined} undef.)" if undefined else ""))
        paper = PAPER_CIFAR10.get(label)
        cells.append("—" if paper is None else f"{paper:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    rules = [rule.strip() for rule in args.conv_rules.split(",") if rule.strip()]
    for rule in rules:
        sim.to_matrix(np.zeros((1, 1)), rule)  # unknown rules fail now, not after training
    metrics = [m for m in METRICS if args.metrics == "all" or m[0] in args.metrics.split(",")]
    os.makedirs(args.out, exist_ok=True)

    ds = load_dataset("mnist_subset")
    for flag, value, available in (
        ("--num-examples", args.num_examples, len(ds.test_images)),
        ("--num-train", args.num_train, len(ds.train_images)),
    ):
        if not 4 <= value <= available:
            raise UserError(f"{flag} must be between 4 and {available}, got {value}.")
    if args.num_networks < 2:
        raise UserError(f"--num-networks must be at least 2, got {args.num_networks}.")
    train_images = _images(ds.train_images[: args.num_train])
    train_labels = jnp.asarray(ds.train_labels[: args.num_train])
    eval_images = _images(ds.test_images[: args.num_examples])
    n = len(eval_images)

    model = Tiny10(num_classes=10)
    optimizer = optax.adam(args.learning_rate)
    step = make_train_step(model, optimizer)
    apply_fn = jax.jit(functools.partial(model.apply, train=False, return_layers=True))
    activations, accuracies = [], []
    for seed in range(args.num_networks):
        start = time.time()
        variables, loss = train_network(
            seed, model, optimizer, step, train_images, train_labels, args
        )
        layers = layer_activations(apply_fn, variables, eval_images)
        accuracy = float(np.mean(layers["logits"].argmax(-1) == ds.test_labels[:n]))
        accuracies.append(accuracy)
        activations.append(layers)
        print(
            f"network {seed}: final loss {loss:.3f}, held-out accuracy {accuracy:.3f} "
            f"({time.time() - start:.0f}s)",
            flush=True,
        )

    results, timings = {}, {}
    for rule in rules:
        layers = [sim.to_matrix(net[name], rule) for net in activations for name in LAYERS]
        results[rule] = {}
        for label, metric, options, symmetric in metrics:
            start = time.time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # degenerate CCA layers: counted as undefined
                matrix = np.asarray(sim.all_pairs(metric, layers, **options))
            fraction, undefined = correspondence(matrix, args.num_networks, len(LAYERS), symmetric)
            results[rule][label] = {"accuracy": fraction, "undefined": undefined}
            timings[f"{rule}/{label}"] = time.time() - start
            print(f"  [{rule}] {label}: {100 * fraction:.1f}% ({timings[f'{rule}/{label}']:.1f}s)")
            if metric == "linear_cka" and not options and args.num_networks >= 2:
                num = len(LAYERS)
                save_heatmap(
                    matrix[:num, num : 2 * num],
                    os.path.join(args.out, f"cka_heatmap_{rule}.png"),
                    f"linear CKA, Tiny-10 seed 0 vs seed 1 ({rule}, n={n})",
                )

    table = format_table(results, rules, n)
    print(table)
    summary = {
        "args": vars(args),
        "num_examples": n,
        "held_out_accuracy": accuracies,
        "results": results,
        "paper_cifar10": PAPER_CIFAR10,
        "seconds": timings,
        "table": table,
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
