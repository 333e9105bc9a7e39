"""Colorization on the photo patches (32×32 colour patches of scikit-image's photographs, labelled
by photo; notes 002): the small CNN on L to an 8×8 grid of ab-bin logits (Q = 265
bins), rebalanced cross-entropy.

python -m ssl_jax.train --config experiments/colorization_photos.py \
    --workdir runs/colorization_photos
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults


def get_config():
    c = base_config()
    c.dataset = "photo_patches"
    c.batch_size = 128
    c.num_steps = 2000
    c.log_every = 100
    c.checkpoint_every = 1000
    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="avg")
    )
    c.objective = ml_collections.ConfigDict(
        dict(name="colorization", **objective_defaults("colorization"))
    )
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 100
    return c
