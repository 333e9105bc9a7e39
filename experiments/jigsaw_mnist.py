"""Jigsaw puzzles on the MNIST subset (notes 001 §3.3.2): 3×3 tiles of 7×7 pixels in 9-pixel
cells (a gap of at least 1 pixel, a jitter of 0-1), 100 permutations of maximal minimum
Hamming distance, a context-free network; the table in docs/prediction.md.

python -m ssl_jax.train --config experiments/jigsaw_mnist.py --workdir runs/jigsaw_mnist

Fewer or more classes: ``--config.objective.num_permutations=30`` (or 1000).
"""

from ssl_jax.config import mnist_config


def get_config():
    c = mnist_config("jigsaw", num_steps=500)
    c.batch_size = 128  # images; the encoder sees 9 × 128 tiles a step
    c.model.pool = "avg"  # as experiments/rotation_mnist.py, to compare the three alike
    return c
