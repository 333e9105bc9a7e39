"""Deep autoencoder with a convolutional decoder on the MNIST subset (notes 004, Hinton &
Salakhutdinov 2006; notes 001 §3.2.3): experiments/autoencoder_mnist.py with the MLP decoder
replaced by a Dense layer to a 4×4×64 map and three ×2 upsamplings with 3×3 convolutions
(64 → 32 → 16 → 8 channels, 32×32 cropped to 28×28), so encoder and decoder are both
convolutional.

python -m ssl_jax.train --config experiments/conv_autoencoder_mnist.py --workdir runs/conv_ae
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "autoencoder_mnist.py"))
    c.objective.decoder = "conv"
    c.objective.decoder_width = 64
    return c
