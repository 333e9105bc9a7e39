"""Rotation prediction on the MNIST subset (notes 001 §3.3.2): every digit in its four
rotations, 4-way classification; the table in docs/prediction.md.

python -m ssl_jax.train --config experiments/rotation_mnist.py --workdir runs/rotation_mnist

One random rotation per digit instead of all four: ``--config.objective.all_rotations=False``.
"""

from ssl_jax.config import mnist_config


def get_config():
    c = mnist_config("rotation", num_steps=500)
    c.batch_size = 128  # images; the encoder sees 512 rotated ones a step
    # Read out after global average pooling: the flattened maps of a random CNN are a random
    # projection of the pixels that a probe reads nearly as well as learned features
    # (experiments/autoencoder_mnist.py), which would hide what the pretext task taught.
    c.model.pool = "avg"
    return c
