"""CMC on the 5,000-image MNIST subset (the methods table in docs/multiview.md).

Grey digits have one channel, so the two views are the top and bottom halves of the image,
each cut from its own random crop (`ssl_jax.objectives.cmc`); the representation is the two
half-encoders' features concatenated. τ = 0.2: with in-batch negatives (255 per image here,
not the paper's 16,384 from a memory bank) it learns faster than the paper's 0.07 (measured
on digits, tests/test_cmc.py).

python -m ssl_jax.train --config experiments/cmc_mnist.py --workdir runs/cmc_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config(
        "cmc",
        temperature=0.2,
        projector=dict(hidden_dims=(512,), output_dim=128),
    )
