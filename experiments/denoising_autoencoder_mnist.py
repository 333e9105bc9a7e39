"""Denoising autoencoder on the MNIST subset (notes 002): experiments/autoencoder_mnist.py
where the encoder reads the digit with 25 % of its pixels set to 0 (masking noise) and the
decoder reconstructs the clean digit, the error on the masked pixels weighted α = 1 and on the
others β = 0.5 (002's emphasis on the corrupted pixels).

python -m ssl_jax.train --config experiments/denoising_autoencoder_mnist.py \
    --workdir runs/denoising_ae
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "autoencoder_mnist.py"))
    c.objective.corruption = "masking"  # or "gaussian" (σ) or "salt_and_pepper" (fraction)
    c.objective.corruption_level = 0.25
    c.objective.corrupted_weight = 1.0  # α
    c.objective.clean_weight = 0.5  # β
    return c
