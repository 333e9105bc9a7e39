"""MoCo v2 on the 5,000-image MNIST subset (the methods table in docs/multiview.md).

python -m ssl_jax.train --config experiments/moco_v2_mnist.py --workdir runs/moco_v2_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config("moco_v2", temperature=0.2, queue_size=4096, momentum=0.99, symmetric=True)
