"""Variational information bottleneck on the MNIST subset (notes 001 §4; Alemi et al. 2017): the
small CNN to a 32-dimensional Gaussian code, a linear classifier on a sample of it, and β times
the KL to N(0, I), the bound on I(Z; X). The β sweep of docs/compression.md:

    python benchmarks/information_bottleneck.py --betas 0,1e-3,1e-2,1e-1,1

python -m ssl_jax.train --config experiments/vib_mnist.py --workdir runs/vib_mnist
"""

import ml_collections

from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 128
    c.num_steps = 1000
    c.log_every = 100
    c.checkpoint_every = 500
    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="avg")
    )
    c.objective = ml_collections.ConfigDict(
        dict(name="vib", latent_dim=32, beta=1e-3, beta_warmup_steps=100, num_classes=10)
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 50
    return c
