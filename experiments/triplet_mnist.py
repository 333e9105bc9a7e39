"""The triplet loss with batch-hard mining on the 5,000-image MNIST subset (the methods table in
docs/multiview.md). Supervised: it reads the labels (``--config.objective.positives=views``
for the self-supervised variant).

python -m ssl_jax.train --config experiments/triplet_mnist.py --workdir runs/triplet_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config(
        "triplet",
        mining="batch_hard",
        margin=0.2,
        squared=False,
        positives="labels",
        projector=dict(hidden_dims=(512,), output_dim=128),
    )
