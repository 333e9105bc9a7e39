"""Sparse autoencoder on the MNIST subset (notes 004): experiments/autoencoder_mnist.py with an
L1 penalty λ·(1/B)Σ|c| on the 64-dimensional code (``sparsity="kl"`` for the KL-to-ρ form).

python -m ssl_jax.train --config experiments/sparse_autoencoder_mnist.py --workdir runs/sparse_ae
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "autoencoder_mnist.py"))
    c.objective.sparsity = "l1"
    c.objective.sparsity_weight = 0.01
    return c
