"""Barlow Twins on the 5,000-image MNIST subset (the methods table in docs/multiview.md).

python -m ssl_jax.train --config experiments/barlow_twins_mnist.py --workdir runs/barlow_mnist

Tsai et al.'s HSIC variant: add ``--config.objective.off_diagonal=hsic``.
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config(
        "barlow_twins",
        projector=dict(hidden_dims=(512, 512), output_dim=512),
        lambd=0.0051,
    )
