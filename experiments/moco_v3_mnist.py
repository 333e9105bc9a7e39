"""MoCo v3 on the 5,000-image MNIST subset (the methods table in docs/multiview.md).

python -m ssl_jax.train --config experiments/moco_v3_mnist.py --workdir runs/moco_v3_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config(
        "moco_v3",
        temperature=0.2,
        momentum=0.99,
        projector=dict(hidden_dims=(512,), output_dim=128, last_bn=True),
        predictor=dict(hidden_dims=(512,), output_dim=128),
    )
