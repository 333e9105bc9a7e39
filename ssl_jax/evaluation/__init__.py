"""Evaluation protocols: probes, kNN, few-shot, fine-tuning, collapse, disentanglement,
retrieval, plots.

All take NumPy or JAX arrays, choose no hyperparameter on the test split, and return a dict
with the results and every setting used. See docs/evaluation.md.
"""

from ssl_jax.diagnostics import (
    alignment,
    collapse_diagnostics,
    effective_rank,
    embedding_std,
    uniformity,
)
from ssl_jax.evaluation.disentanglement import (
    all_scores,
    beta_vae_score,
    dci,
    factor_vae_score,
    mig,
    mig_details,
)
from ssl_jax.evaluation.fewshot import fewshot
from ssl_jax.evaluation.finetune import finetune, linear_probe_sgd
from ssl_jax.evaluation.knn import knn_classify, knn_sweep
from ssl_jax.evaluation.linear_probe import (
    fit_logistic_regression,
    linear_probe,
    logistic_objective,
    sklearn_c,
)
from ssl_jax.evaluation.plots import pca_2d, plot_projections, tsne_2d
from ssl_jax.evaluation.retrieval import precision_at_k
from ssl_jax.evaluation.transfer import class_subset

__all__ = [
    "alignment",
    "all_scores",
    "class_subset",
    "beta_vae_score",
    "dci",
    "factor_vae_score",
    "mig",
    "mig_details",
    "collapse_diagnostics",
    "effective_rank",
    "embedding_std",
    "fewshot",
    "finetune",
    "fit_logistic_regression",
    "knn_classify",
    "knn_sweep",
    "linear_probe",
    "linear_probe_sgd",
    "logistic_objective",
    "pca_2d",
    "plot_projections",
    "precision_at_k",
    "sklearn_c",
    "tsne_2d",
    "uniformity",
]
