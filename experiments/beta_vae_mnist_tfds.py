"""β-VAE on all of MNIST through TFDS (prepared under $TFDS_DATA_DIR): the VAE of
experiments/vae_mnist_tfds.py (32-dimensional code, 100 epochs) with the KL weighted by β = 4.

python -m ssl_jax.train --config experiments/beta_vae_mnist_tfds.py --workdir runs/beta_vae_tfds
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "vae_mnist_tfds.py"))
    c.objective.beta = 4.0
    return c
