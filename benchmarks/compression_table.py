"""Rows of the tables in docs/compression.md: pretrain a compression objective, read it out,
and measure what the notes and the literature report for it.

    python benchmarks/compression_table.py experiments/linear_autoencoder_mnist.py \
        experiments/vae_mnist.py [--set num_steps=500 ...] [--workdir DIR]

Each config trains as ``python -m ssl_jax.train`` would (readout included: every named
representation beside the same network at its random initialisation, kNN and the L-BFGS
linear probe on the held-out split; pixels as the baseline). Then, by objective:

- ``linear_autoencoder``: the principal angles between the decoder's columns and the top-k
  principal directions of the training pixels (`ssl_jax.pca`), and the held-out squared error
  beside PCA's projection of the same k;
- ``autoencoder``: the held-out mean squared error per pixel (pixels in [0, 1]) of the
  reconstruction σ(g(c)) from the clean image, the figure notes 004 compare for the plain
  and the sparse autoencoder (0.0318 vs 0.0301);
- ``vae``: the held-out ELBO in nats per image, E_q[log p(x|z)] − KL, on dynamically binarised
  held-out digits (one binarisation, ``--elbo_samples`` draws of z per image), its two terms,
  and the active units (Var_x[μ_j] > 0.01 over the held-out set).

Prints a markdown row per config.
"""

import argparse
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.checkpoint import Checkpoints
from ssl_jax.config import apply_overrides, load_config
from ssl_jax.data import load_dataset
from ssl_jax.data.spec import decoded_spec
from ssl_jax.latent import active_units, bernoulli_nll, gaussian_kl, split_gaussian
from ssl_jax.models import MLPDecoder, build_encoder
from ssl_jax.objectives import make_objective
from ssl_jax.pca import pca, pca_reconstruct, principal_angles, reconstruction_error
from ssl_jax.train import train


def restore_params(workdir: str, modules) -> tuple[dict, dict]:
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=1, read_only=True)
    restored = checkpoints.restore_modules(checkpoints.latest_step(), modules)
    return restored["params"], restored["batch_stats"]


def linear_autoencoder_figures(config, dataset, workdir: str) -> str:
    params, _ = restore_params(workdir, ("encoder", "decoder"))
    train_x = dataset.decoded("train", "images").reshape(dataset.num_train_examples, -1)
    test_x = dataset.decoded("test", "images")
    test_x = test_x.reshape(len(test_x), -1)
    k = config.model.features
    principal = pca(train_x, k)
    decoder = params["decoder"]["Dense_0"]
    angles = np.degrees(np.asarray(principal_angles(decoder["kernel"].T, principal.components.T)))
    code = test_x @ params["encoder"]["code"]["kernel"] + params["encoder"]["code"]["bias"]
    learned_error = reconstruction_error(test_x, code @ decoder["kernel"] + decoder["bias"])
    pca_error = reconstruction_error(test_x, pca_reconstruct(principal, test_x))
    return (
        f"principal angles to PCA's top {k}: median {np.median(angles):.2f}°, largest "
        f"{angles.max():.1f}°; held-out squared error {learned_error:.3f} (PCA {pca_error:.3f})"
    )


def autoencoder_figures(config, dataset, workdir: str) -> str:
    """Reconstructs through the objective's own ``pictures`` (batch norm in inference mode)."""
    params, stats = restore_params(workdir, ("encoder", "bottleneck", "decoder"))
    images = dataset.decoded("test", "images")
    objective = make_objective(config, decoded_spec(dataset.spec))
    reconstruct = jax.jit(
        lambda x: objective.pictures(params, stats, x, jax.random.PRNGKey(0))["reconstructions"][1]
    )
    errors = [
        np.asarray((reconstruct(x) - x) ** 2).reshape(len(x), -1).mean(axis=1)
        for x in (images[start : start + 500] for start in range(0, len(images), 500))
    ]
    return f"held-out MSE per pixel {np.concatenate(errors).mean():.4f}"


def vae_figures(config, dataset, workdir: str, num_samples: int) -> str:
    cfg = config.objective
    params, stats = restore_params(workdir, ("encoder", "posterior", "decoder"))
    images = dataset.decoded("test", "images")
    encoder = build_encoder(config.model, images.shape[1:])
    decoder = MLPDecoder(images.shape[1:], hidden_dims=tuple(cfg.decoder_hidden_dims))
    key = jax.random.PRNGKey(0)
    binary = (
        np.asarray(jax.random.bernoulli(key, images)).astype(np.float32) if cfg.binarize else images
    )

    @jax.jit
    def terms(x, key):
        variables = {"params": params["encoder"], "batch_stats": stats.get("encoder", {})}
        h = encoder.apply(variables, x, train=False)
        post = params["posterior"]
        mean, log_variance = split_gaussian(h @ post["kernel"] + post["bias"])
        noise = jax.random.normal(key, (num_samples, *mean.shape))
        z = mean + jnp.exp(0.5 * log_variance) * noise
        logits = jax.vmap(lambda z: decoder.apply({"params": params["decoder"]}, z, train=False))(z)
        nll = jax.vmap(lambda logit: bernoulli_nll(logit, x))(logits).mean(axis=0)
        return nll, gaussian_kl(mean, log_variance), mean

    nll, kl, means = [], [], []
    for start in range(0, len(binary), 500):
        a, b, c = terms(binary[start : start + 500], jax.random.fold_in(key, start))
        nll.append(a), kl.append(b), means.append(c)
    nll, kl = float(np.concatenate(nll).mean()), float(np.concatenate(kl).mean())
    active = int(active_units(np.concatenate(means)))
    return (
        f"held-out ELBO {-(nll + kl):.1f} nats (reconstruction {nll:.1f}, KL {kl:.1f}); "
        f"active units {active}/{cfg.latent_dim}"
    )


def variant_name(config) -> str:
    cfg = config.objective
    if cfg.name == "autoencoder" and cfg.get("sparsity", "none") != "none":
        return f"sparse autoencoder ({cfg.sparsity}, λ={cfg.sparsity_weight:g})"
    if cfg.name == "autoencoder" and cfg.get("corruption", "none") != "none":
        return f"denoising autoencoder ({cfg.corruption} {cfg.corruption_level:g})"
    if cfg.name == "autoencoder" and cfg.get("contraction", "none") != "none":
        return f"contractive autoencoder ({cfg.contraction}, λ={cfg.contraction_weight:g})"
    if "beta" in cfg:
        return f"{cfg.name} (β={cfg.beta})"
    return cfg.name


def table_row(config, workdir: str, elbo_samples: int) -> str:
    start = time.perf_counter()
    readout = train(config, workdir)
    wall = time.perf_counter() - start
    dataset = load_dataset(config.dataset, config.data.to_dict())
    name = config.objective.name
    if name == "linear_autoencoder":
        extra = linear_autoencoder_figures(config, dataset, workdir)
    elif name == "autoencoder":
        extra = autoencoder_figures(config, dataset, workdir)
    elif name == "vae":
        extra = vae_figures(config, dataset, workdir, elbo_samples)
    else:
        extra = ""
    cells = []
    for rep, per_label in readout["representations"].items():
        scores = per_label["labels"]
        knn, linear = scores["knn"], scores["linear"]
        cells.append(
            f"{rep}: kNN {knn['trained']:.3f} / {knn['random_init']:.3f} / "
            f"{knn.get('pixels', float('nan')):.3f}, linear {linear['trained']:.3f} / "
            f"{linear['random_init']:.3f} / {linear.get('pixels', float('nan')):.3f}"
        )
    return (
        f"| {variant_name(config)} | {config.num_steps} | "
        f"{wall / 60:.1f} min | {'; '.join(cells)} | {extra} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every config")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--elbo_samples", type=int, default=10)
    args = parser.parse_args()
    root = args.workdir or tempfile.mkdtemp(prefix="compression_table_")
    print(
        "| method | steps | wall (2 CPU cores) | kNN and linear: trained / random init / pixels "
        "| measured |\n|---|---|---|---|---|"
    )
    for i, path in enumerate(args.configs):
        config = load_config(path)
        apply_overrides(config, args.set)
        row = table_row(
            config, os.path.join(root, f"{i}_{os.path.basename(path)[:-3]}"), args.elbo_samples
        )
        print(row, flush=True)


if __name__ == "__main__":
    main()
