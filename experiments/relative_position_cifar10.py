"""Relative patch position on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), after Doersch et
al. (2015): the centre 7×7 patch of a 3×3 grid of 10-pixel cells (a gap of at least 2 pixels, a
jitter of 0-1) and one of its 8 neighbours, 8-way classification, colour dropping (one channel
kept per patch, the others their mean plus faint noise) against chromatic aberration; ResNet-18
with the CIFAR stem. The optimiser and views are those of experiments/rotation_cifar10.py.

python -m ssl_jax.train --config experiments/relative_position_cifar10.py \
    --workdir runs/relative_position_cifar10
"""

from ssl_jax.config import cifar10_config

EPOCHS = 100


def get_config():
    c = cifar10_config("relative_position", epochs=EPOCHS, augment=True, colour_dropping="noise")
    c.batch_size = 128
    c.num_steps = EPOCHS * 50_000 // c.batch_size
    c.optim.warmup_steps = 50_000 // c.batch_size  # one epoch
    c.aug.global_scale = (0.6, 1.0)
    c.aug.jitter_prob = c.aug.grayscale_prob = c.aug.blur_prob = 0.0
    c.optim.name = "sgd"
    c.optim.lr = 0.1
    c.optim.momentum = 0.9
    c.optim.weight_decay = 5e-4
    return c
