"""CPC on 2-D patch grids on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR; notes 002 §2.8):
8×8 patches 4 apart (a 7 × 7 grid, as van den Oord et al. cut their 64×64 crops), a
ResNet-18 with the CIFAR stem per patch, a column GRU, predictions up to 3 rows ahead.

python -m ssl_jax.train --config experiments/cpc_grid_cifar10.py --workdir runs/cpc_grid_cifar10
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults


def get_config():
    c = base_config()
    c.dataset = "tfds:cifar10"
    c.batch_size = 128
    c.num_steps = 100 * 50_000 // c.batch_size
    c.log_every = 100
    c.checkpoint_every = 5000
    c.model = ml_collections.ConfigDict(dict(name="resnet18", stem="cifar"))
    c.objective = ml_collections.ConfigDict(
        dict(
            name="cpc_grid",
            **{**objective_defaults("cpc_grid"), "prediction_steps": 3, "context_dim": 256},
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 5 * 50_000 // c.batch_size
    return c
