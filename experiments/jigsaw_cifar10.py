"""Jigsaw puzzles on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR): 3×3 tiles of 8×8 pixels
in 10-pixel cells (a gap of at least 1 pixel, a jitter of 0-1), 100 permutations of maximal
minimum Hamming distance (Noroozi & Favaro 2016's class count), ResNet-18 with the CIFAR stem
as the context-free network's shared tile encoder. The optimiser and views are those of
experiments/rotation_cifar10.py, so the three transformation objectives compare alike.

python -m ssl_jax.train --config experiments/jigsaw_cifar10.py --workdir runs/jigsaw_cifar10
"""

from ssl_jax.config import cifar10_config

EPOCHS = 100


def get_config():
    c = cifar10_config("jigsaw", epochs=EPOCHS, augment=True)
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
