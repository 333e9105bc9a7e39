"""SimSiam on the 5,000-image MNIST subset (the methods table in docs/multiview.md).

python -m ssl_jax.train --config experiments/simsiam_mnist.py --workdir runs/simsiam_mnist

The collapse ablation (no stop-gradient): add ``--config.objective.stop_gradient=False``.
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config(
        "simsiam",
        projector=dict(hidden_dims=(512,), output_dim=256, last_bn=True),
        predictor=dict(hidden_dims=(64,), output_dim=256),
    )
