"""The Gumbel-softmax VAE of experiments/gumbel_vae_mnist.py on all of MNIST through TFDS
(prepared under $TFDS_DATA_DIR), 50 epochs, the temperature annealed over them (Jang et al.
2017 anneal τ = max(0.5, exp(−rt)) with r of 1e-5 to 1e-4).

python -m ssl_jax.train --config experiments/gumbel_vae_mnist_tfds.py \
    --workdir runs/gumbel_vae_mnist_tfds
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "gumbel_vae_mnist.py"))
    c.dataset = "tfds:mnist"
    c.num_steps = 50 * 60_000 // c.batch_size
    c.log_every = 500
    c.checkpoint_every = 5000
    c.objective.temperature_decay = 3e-5
    c.optim.warmup_steps = 500
    return c
