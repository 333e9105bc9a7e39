"""VICReg on the 5,000-image MNIST subset (the methods table in docs/multiview.md).

python -m ssl_jax.train --config experiments/vicreg_mnist.py --workdir runs/vicreg_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config(
        "vicreg",
        projector=dict(hidden_dims=(512, 512), output_dim=512),
        sim_coeff=25.0,
        std_coeff=25.0,
        cov_coeff=1.0,
    )
