"""2-D projections of embeddings coloured by class (PCA and t-SNE), saved as PNG.

- ``pca_2d``: the features centred, projected on their top two principal directions
  (x ↦ (x − x̄) V₂, V₂ the two leading right singular vectors); linear, so distances along the
  axes are those of the features.
- ``tsne_2d``: t-SNE (scikit-learn; perplexity 30, PCA init, 500 iterations, fixed seed) on the
  L2-normalised features, the geometry the kNN protocol uses; only neighbourhoods are
  meaningful, not distances between clusters.

Both subsample to at most ``max_points`` (a seeded, class-stratified draw) so a plot costs
seconds on a CPU; the subsample is recorded in the returned settings.
"""

import os

import numpy as np

from ssl_jax.errors import UserError
from ssl_jax.evaluation.checks import check_features_and_labels


def pca_2d(x) -> np.ndarray:
    """(x − mean) @ V[:, :2], V from the SVD of the centred features."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def tsne_2d(x, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """t-SNE of L2-normalised x (PCA init); perplexity capped below the number of points."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    perplexity = min(perplexity, (len(x) - 1) / 3)
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500)
    # One OpenMP thread: at ≤ 2,000 points that takes seconds, while spinning threads on a
    # busy CPU (other jobs, JAX's own pool) made it 10-50× slower in our measurements.
    with threadpool_limits(limits=1, user_api="openmp"):
        return tsne.fit_transform(x)


def subsample(labels, max_points: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_points`` rows, drawn in proportion to each class."""
    if len(labels) <= max_points:
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    keep, _ = train_test_split(
        np.arange(len(labels)), train_size=max_points, random_state=seed, stratify=stratify
    )
    return np.sort(keep)


PROJECTIONS = {"pca": pca_2d, "tsne": tsne_2d}


def plot_projections(
    x, labels, directory, *, prefix="embedding", methods=("pca", "tsne"), max_points=2000, seed=0
) -> dict:
    """Writes ``directory/{prefix}_{method}.png`` for each method; returns paths and settings."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    x, labels = check_features_and_labels(x, labels, "plotted")
    unknown = [m for m in methods if m not in PROJECTIONS]
    if unknown:
        raise UserError(f"unknown projection {unknown[0]!r}; use {', '.join(PROJECTIONS)}.")
    if len(x) < 4:
        raise UserError(f"{len(x)} points are too few to project; give at least 4.")
    total = len(x)
    keep = subsample(labels, max_points, seed)
    x, labels = x[keep], labels[keep]
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for method in methods:
        points = tsne_2d(x, seed=seed) if method == "tsne" else pca_2d(x)
        fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4)
        ax.legend(*scatter.legend_elements(), loc="best", fontsize=6, title="class")
        ax.set_title(f"{prefix}: {method.upper()} of {len(x)} points")
        ax.set_xticks([])
        ax.set_yticks([])
        path = os.path.join(directory, f"{prefix}_{method}.png")
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        paths[method] = path
    return {
        "paths": paths,
        "settings": {
            "methods": list(methods),
            "points": len(x),
            "max_points": max_points,
            "subsample": f"class-stratified, seeded, of {total}" if len(x) < total else "all",
            "seed": seed,
            "pca": "centred features, top two principal directions",
            "tsne": "L2-normalised features, perplexity min(30, (n-1)/3), PCA init, 500 iterations",
        },
    }
