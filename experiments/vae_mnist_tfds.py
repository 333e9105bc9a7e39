"""VAE on all of MNIST through TFDS (prepared under $TFDS_DATA_DIR), dynamically binarised:
the setting of the published test ELBOs (about −104 to −108 nats for small VAEs). The VAE of
experiments/vae_mnist.py with a 32-dimensional code, 100 epochs.

python -m ssl_jax.train --config experiments/vae_mnist_tfds.py --workdir runs/vae_mnist_tfds
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "vae_mnist.py"))
    c.dataset = "tfds:mnist"
    c.num_steps = 100 * 60_000 // c.batch_size
    c.log_every = 500
    c.checkpoint_every = 5000
    c.objective.latent_dim = 32
    c.objective.beta_warmup_steps = 2000
    c.optim.warmup_steps = 500
    return c
