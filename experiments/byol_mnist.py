"""BYOL on the 5,000-image MNIST subset (the methods table in docs/multiview.md).

python -m ssl_jax.train --config experiments/byol_mnist.py --workdir runs/byol_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config(
        "byol",
        projector=dict(hidden_dims=(512,), output_dim=128),
        predictor=dict(hidden_dims=(512,), output_dim=128),
    )
