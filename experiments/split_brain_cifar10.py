"""Split-brain autoencoder on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR; notes 002):
ResNet-18 with the CIFAR stem on each half (L and ab), colours predicted on an 8×8 grid, batch
256, 200 epochs, AdamW. No augmentation: the colours are the target.

python -m ssl_jax.train --config experiments/split_brain_cifar10.py \
    --workdir runs/split_brain_cifar10
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults


def get_config():
    c = base_config()
    c.dataset = "tfds:cifar10"
    c.batch_size = 256
    c.num_steps = 200 * 50_000 // c.batch_size
    c.log_every = 100
    c.checkpoint_every = 5000
    c.model = ml_collections.ConfigDict(dict(name="resnet18", stem="cifar"))
    c.objective = ml_collections.ConfigDict(
        dict(name="split_brain", **objective_defaults("split_brain"))
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 10 * 50_000 // c.batch_size
    return c
