"""Linear autoencoder on the MNIST subset: a 32-number affine code trained by gradient descent
on the squared error, which learns the principal subspace (notes 004; `ssl_jax.pca`).

python -m ssl_jax.train --config experiments/linear_autoencoder_mnist.py --workdir runs/linear_ae
"""

import ml_collections

from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 256
    c.num_steps = 2000
    c.log_every = 100
    c.checkpoint_every = 1000
    c.model = ml_collections.ConfigDict(dict(name="linear", features=32))
    c.objective = ml_collections.ConfigDict(dict(name="linear_autoencoder"))
    c.optim.name = "adamw"
    c.optim.lr = 1e-2
    c.optim.weight_decay = 0.0  # decay shrinks the code; the subspace is the point
    c.optim.warmup_steps = 50
    return c
