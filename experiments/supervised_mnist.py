"""Supervised pretraining on the MNIST subset: the row every self-supervised result sits beside.

python -m ssl_jax.train --config experiments/supervised_mnist.py --workdir runs/sup_mnist
"""

import ml_collections

from ssl_jax import augment
from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 128
    c.num_steps = 600
    c.log_every = 50
    c.checkpoint_every = 300
    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="flatten")
    )
    c.objective = ml_collections.ConfigDict(
        dict(name="supervised", num_classes=10, smoothing=0.1, augment=True)
    )
    c.aug = augment.default_config()
    c.aug.num_global = 1
    c.aug.global_scale = (0.6, 1.0)
    c.aug.flip_prob = 0.0
    c.aug.grayscale_prob = 0.0
    c.aug.blur_prob = 0.0
    c.aug.jitter_prob = 0.0
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 30
    c.optim.weight_decay = 1e-4
    return c
