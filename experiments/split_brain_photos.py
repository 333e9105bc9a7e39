"""Split-brain autoencoder on the photo patches (32×32 colour patches of scikit-image's
photographs, labelled by photo; notes 002): two half-width CNNs (L → ab bins, ab → 50 L
bins), read out concatenated.

python -m ssl_jax.train --config experiments/split_brain_photos.py \
    --workdir runs/split_brain_photos
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
        dict(name="small_cnn", widths=(16, 32, 64), convs_per_stage=1, pool="avg")
    )
    c.objective = ml_collections.ConfigDict(
        dict(name="split_brain", **objective_defaults("split_brain"))
    )
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.weight_decay = 1e-4
    c.optim.warmup_steps = 100
    return c
