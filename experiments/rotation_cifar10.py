"""Rotation prediction on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), after Gidaris et al.
(2018)'s CIFAR runs: every image in its four rotations, SGD lr 0.1 with momentum 0.9, weight
decay 5e-4, batch 128 images (512 rotated), 100 epochs, random crops and flips before
rotating; ResNet-18 with the CIFAR stem in place of their network-in-network, and a cosine
schedule in place of their step decays.

python -m ssl_jax.train --config experiments/rotation_cifar10.py --workdir runs/rotation_cifar10
"""

from ssl_jax.config import cifar10_config

EPOCHS = 100


def get_config():
    c = cifar10_config("rotation", epochs=EPOCHS, augment=True)
    c.batch_size = 128
    c.num_steps = EPOCHS * 50_000 // c.batch_size
    c.optim.warmup_steps = 50_000 // c.batch_size  # one epoch
    # Crops and flips only: the views are a light augmentation here, not the task.
    c.aug.global_scale = (0.6, 1.0)
    c.aug.jitter_prob = c.aug.grayscale_prob = c.aug.blur_prob = 0.0
    c.optim.name = "sgd"
    c.optim.lr = 0.1
    c.optim.momentum = 0.9
    c.optim.weight_decay = 5e-4
    return c
