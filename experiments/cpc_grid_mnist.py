"""CPC on 2-D patch grids on the MNIST subset (notes 002 §2.8): 8×8 patches 4 apart (a 6 × 6
grid), a small CNN per patch, a GRU down each column of the grid, predictions 1 and 2 rows
ahead, InfoNCE over every patch of the global batch.

python -m ssl_jax.train --config experiments/cpc_grid_mnist.py --workdir runs/cpc_grid_mnist
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 64  # 64 images × 6 columns × 4 anchor rows = 1,536 candidates per offset
    c.num_steps = 2000
    c.log_every = 100
    c.checkpoint_every = 1000
    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64), convs_per_stage=1, pool="avg")
    )
    c.objective = ml_collections.ConfigDict(dict(name="cpc_grid", **objective_defaults("cpc_grid")))
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 100
    return c
