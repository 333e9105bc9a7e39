"""The VQ-VAE of experiments/vq_vae_mnist.py on all of MNIST through TFDS (prepared under
$TFDS_DATA_DIR), 20 epochs, with 128 codes.

python -m ssl_jax.train --config experiments/vq_vae_mnist_tfds.py --workdir runs/vq_vae_mnist_tfds
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "vq_vae_mnist.py"))
    c.dataset = "tfds:mnist"
    c.num_steps = 20 * 60_000 // c.batch_size
    c.log_every = 500
    c.checkpoint_every = 2000
    c.objective.num_codes = 128
    c.optim.warmup_steps = 500
    return c
