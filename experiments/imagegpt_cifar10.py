"""ImageGPT-style next-pixel prediction on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR): 32×32
images averaged to 16×16, 4 levels per channel (a 64-colour palette): 256-pixel sequences; a
causal Transformer (dim 256, depth 8, num_heads 8), read out at its middle block (notes 001
§3.2).

python -m ssl_jax.train --config experiments/imagegpt_cifar10.py --workdir runs/imagegpt_cifar10
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults


def get_config():
    c = base_config()
    c.dataset = "tfds:cifar10"
    c.batch_size = 128
    c.num_steps = 50 * 50_000 // c.batch_size
    c.log_every = 100
    c.checkpoint_every = 1000
    c.model = ml_collections.ConfigDict(
        dict(name="token_transformer", dim=256, depth=8, num_heads=8)
    )
    c.objective = ml_collections.ConfigDict(
        dict(name="imagegpt", **{**objective_defaults("imagegpt"), "resolution": 16})
    )
    c.optim.name = "adamw"
    c.optim.lr = 5e-4
    c.optim.weight_decay = 0.01
    c.optim.warmup_steps = 2000
    c.optim.clip_norm = 1.0
    return c
