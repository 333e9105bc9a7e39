"""β-VAE on the MNIST subset (Higgins et al. 2017): the VAE of experiments/vae_mnist.py with
the KL weighted by β = 4, trading reconstruction for a more factorised code.

python -m ssl_jax.train --config experiments/beta_vae_mnist.py --workdir runs/beta_vae_mnist
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "vae_mnist.py"))
    c.objective.beta = 4.0
    return c
