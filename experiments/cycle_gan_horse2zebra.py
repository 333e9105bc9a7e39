"""CycleGAN on TFDS's ``cycle_gan/horse2zebra`` (prepared under $TFDS_DATA_DIR; notes 003,
"Cycle-GAN"): the paper's unpaired horse ↔ zebra photographs (Zhu et al. 2017, §5.2).

TFDS stores each domain as its own split (``trainA``, ``trainB``, ``testA``, ``testB``) and
labels every image with its domain (``label``: 0 = A, horses; 1 = B, zebras). The TFDS
loader reads one image stream, so the config names the two training splits as one split
expression, ``trainA+trainB``, and ``objective.domains="label"`` lets each example's label say
its domain: every image goes through both generators and each term of the loss is a mean over
the examples of its domain (`ssl_jax.objectives.cycle_gan`). A batch then holds horses and
zebras in proportion to the splits (1,067 and 1,334 training images), not an equal number;
the readout probes the generators' encoder halves on the domain label of ``testA+testB``.

Images resized to 128×128 on the host (the paper trains on 256×256 crops); G and F with widths
(64, 128, 256) and 6 residual blocks (the paper's 128×128 generator), discriminators 128 →
64×64×64 → 32×32×128 → 16×16×256 → logit; the least-squares game, λ = 10, identity 0.5 λ,
Adam at 2e-4 with β₁ = 0.5 for 200 passes over the data (the paper: batch 1, 100 epochs at a
constant rate then 100 decaying linearly; here batch 16 and a cosine decay).

Prepare once:  tfds build cycle_gan/horse2zebra --file_format=array_record
python -m ssl_jax.train --config experiments/cycle_gan_horse2zebra.py --workdir runs/horse2zebra
"""

import os

import ml_collections

from ssl_jax.config import load_config

TRAIN_IMAGES = 1067 + 1334  # trainA (horses) + trainB (zebras)


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "cycle_gan_digits.py"))
    c.dataset = "tfds:cycle_gan/horse2zebra:trainA+trainB"
    c.data.heldout_split = "testA+testB"
    c.data.image_size = 128
    c.batch_size = 16
    for optim in (c.optim, *c.optim_groups.values()):
        optim.lr = 2e-4  # the paper's
    c.num_steps = 200 * TRAIN_IMAGES // c.batch_size
    c.log_every = 200
    c.checkpoint_every = 2000
    c.objective = ml_collections.ConfigDict(
        dict(
            name="cycle_gan",
            domains="label",
            generator_widths=(64, 128, 256),
            residual_blocks=6,
            discriminator_widths=(64, 128, 256),
            loss="least_squares",
            cycle_weight=10.0,
            identity_weight=5.0,
        )
    )
    return c
