"""The variational information bottleneck of experiments/vib_mnist.py on all of MNIST through
TFDS (prepared under $TFDS_DATA_DIR), 20 epochs; Alemi et al. 2017 report β ≈ 1e-3 best on
MNIST with a 256-dimensional code.

python -m ssl_jax.train --config experiments/vib_mnist_tfds.py --workdir runs/vib_mnist_tfds
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "vib_mnist.py"))
    c.dataset = "tfds:mnist"
    c.num_steps = 20 * 60_000 // c.batch_size
    c.log_every = 500
    c.checkpoint_every = 2000
    c.objective.latent_dim = 256
    return c
