"""Deep autoencoder with a convolutional decoder on all of MNIST through TFDS (prepared under
$TFDS_DATA_DIR): experiments/conv_autoencoder_mnist.py, 20 epochs of the 60,000 images.

python -m ssl_jax.train --config experiments/conv_autoencoder_mnist_tfds.py \
    --workdir runs/conv_ae_tfds
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "conv_autoencoder_mnist.py"))
    c.dataset = "tfds:mnist"
    c.num_steps = 20 * 60_000 // c.batch_size
    c.log_every = 500
    c.checkpoint_every = 5000
    return c
