"""VQ-VAE on the MNIST subset (notes 004; van den Oord et al. 2017): the small CNN's 4×4 map of
the last stage projected to 16-dimensional vectors, each quantised to one of 64 codes, and a
convolutional decoder to Bernoulli pixels; commitment β = 0.25, the codebook moved by EMA
(decay 0.99) and codes unused for 25 steps restarted at batch vectors. The gradient-trained
codebook without restarts: ``--config.objective.ema=False
--config.objective.restart_dead_codes=False`` (docs/discrete_codes.md compares them).

python -m ssl_jax.train --config experiments/vq_vae_mnist.py --workdir runs/vq_vae_mnist
"""

import ml_collections

from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 128
    c.num_steps = 2000
    c.log_every = 100
    c.checkpoint_every = 1000
    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="avg")
    )
    c.objective = ml_collections.ConfigDict(
        dict(
            name="vq_vae",
            num_codes=64,
            code_dim=16,
            commitment_weight=0.25,
            decoder_width=64,
            ema=True,
            ema_decay=0.99,
            ema_epsilon=1e-5,
            restart_dead_codes=True,
            restart_after_steps=25,
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.weight_decay = 0.0
    c.optim.warmup_steps = 50
    return c
