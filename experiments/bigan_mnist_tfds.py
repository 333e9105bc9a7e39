"""BiGAN on all of MNIST through TFDS (prepared under $TFDS_DATA_DIR), 25 epochs; otherwise
experiments/bigan_mnist.py.

python -m ssl_jax.train --config experiments/bigan_mnist_tfds.py --workdir runs/bigan_mnist_tfds
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "bigan_mnist.py"))
    c.dataset = "tfds:mnist"
    c.num_steps = 25 * 60_000 // c.batch_size
    c.log_every = 200
    c.checkpoint_every = 2000
    return c
