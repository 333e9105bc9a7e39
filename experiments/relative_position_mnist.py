"""Relative patch position on the MNIST subset (notes 001 §3.3.2, 002 §2.5): the centre 6×6
patch of a 3×3 grid of 9-pixel cells (a gap of at least 2 pixels, a jitter of 0-1) and one of
its 8 neighbours, 8-way classification; grey digits, so no colour dropping. The table in
docs/prediction.md.

python -m ssl_jax.train --config experiments/relative_position_mnist.py \
    --workdir runs/relative_position_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    c = mnist_config("relative_position", num_steps=500)
    c.batch_size = 128  # pairs; the encoder sees 2 × 128 patches a step
    c.model.pool = "avg"  # as experiments/rotation_mnist.py, to compare the three alike
    return c
