"""The stacked denoising autoencoder of experiments/stacked_denoising_mnist.py on all of MNIST
through TFDS (prepared under $TFDS_DATA_DIR): 1,000-unit layers as in Vincent et al. 2010, 20
epochs per stage. The stages run as the commands of that file show, with this config.
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "stacked_denoising_mnist.py"))
    c.dataset = "tfds:mnist"
    c.num_steps = 20 * 60_000 // c.batch_size
    c.checkpoint_every = 2000
    c.objective.layer_dims = (1000, 1000, 1000)
    return c
