"""SimCLR on the 5,000-image MNIST subset: the main job (≤ 10 minutes on 2 CPU cores).

python -m ssl_jax.train --config experiments/simclr_mnist.py --workdir runs/simclr_mnist
"""

import ml_collections

from ssl_jax import augment
from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 256
    c.num_steps = 500
    c.log_every = 25
    c.checkpoint_every = 200

    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="flatten")
    )
    c.objective = ml_collections.ConfigDict(
        dict(name="simclr", temperature=0.2, projector=dict(hidden_dims=(512,), output_dim=128))
    )

    # Digits: milder crops than ImageNet's (0.08-1) keep each view recognisable; no flips
    # (a mirrored 2 is not a 2) and no colour on grey images.
    c.aug = augment.default_config()
    c.aug.global_scale = (0.5, 1.0)
    c.aug.flip_prob = 0.0
    c.aug.grayscale_prob = 0.0
    c.aug.blur_prob = 0.0
    c.aug.jitter_prob = 0.8
    c.aug.brightness = 0.4
    c.aug.contrast = 0.4

    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.warmup_steps = 50
    c.optim.weight_decay = 1e-4
    return c
