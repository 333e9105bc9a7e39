"""ImageGPT-style next-pixel prediction on the MNIST subset: 28×28 digits averaged to 14×14, 16
grey levels: 196-pixel sequences; a causal Transformer (dim 128, depth 4, num_heads 4), read out
at its middle block (notes 001 §3.2).

python -m ssl_jax.train --config experiments/imagegpt_mnist.py --workdir runs/imagegpt_mnist
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 128
    c.num_steps = 3000
    c.log_every = 100
    c.checkpoint_every = 1000
    c.model = ml_collections.ConfigDict(
        dict(name="token_transformer", dim=128, depth=4, num_heads=4)
    )
    c.objective = ml_collections.ConfigDict(
        dict(name="imagegpt", **{**objective_defaults("imagegpt"), "resolution": 14})
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.weight_decay = 0.01
    c.optim.warmup_steps = 200
    c.optim.clip_norm = 1.0
    return c
