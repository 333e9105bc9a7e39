"""Linear autoencoder on all of MNIST through TFDS (prepared under $TFDS_DATA_DIR): the
principal subspace of 60,000 digits, 32 components, 20 epochs; otherwise
experiments/linear_autoencoder_mnist.py.

python -m ssl_jax.train --config experiments/linear_autoencoder_mnist_tfds.py \
    --workdir runs/linear_ae_tfds
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "linear_autoencoder_mnist.py"))
    c.dataset = "tfds:mnist"
    c.num_steps = 20 * 60_000 // c.batch_size
    c.log_every = 200
    c.checkpoint_every = 2000
    return c
