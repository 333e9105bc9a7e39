"""SupCon on the 5,000-image MNIST subset (the methods table in docs/multiview.md). Supervised:
it reads the labels.

python -m ssl_jax.train --config experiments/supcon_mnist.py --workdir runs/supcon_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config(
        "supcon", temperature=0.1, projector=dict(hidden_dims=(512,), output_dim=128)
    )
