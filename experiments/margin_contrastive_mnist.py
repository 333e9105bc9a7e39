"""The margin contrastive loss on the 5,000-image MNIST subset (the methods table in
docs/multiview.md), pairs by label as in Hadsell et al.'s MNIST experiments. Supervised: it
reads the labels (``--config.objective.pairs=views`` for the self-supervised variant).

python -m ssl_jax.train --config experiments/margin_contrastive_mnist.py \
    --workdir runs/margin_contrastive_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config(
        "margin_contrastive",
        pairs="labels",
        margin=10.0,
        normalize=False,
        balance=True,
        projector=dict(hidden_dims=(512,), output_dim=128),
    )
