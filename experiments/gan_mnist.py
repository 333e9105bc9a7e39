"""GAN (DCGAN) on the MNIST subset (notes 003, 001 §3.2): a generator from 64 Gaussian numbers
to 28×28 digits (7×7×128 → 14×14×64 → 28×28×1) against a convolutional discriminator
(28×28 → 14×14×64 → 7×7×128 → logit), the non-saturating loss, Adam with β₁ = 0.5 in each
group (DCGAN's setting). The representation read out at the end is the discriminator's
7×7×128 map; ``pictures/`` holds samples and interpolations.

python -m ssl_jax.train --config experiments/gan_mnist.py --workdir runs/gan_mnist
"""

import ml_collections

from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 128
    c.num_steps = 1000
    c.log_every = 100
    c.checkpoint_every = 500
    c.objective = ml_collections.ConfigDict(
        dict(
            name="gan",
            latent_dim=64,
            generator_widths=(128, 64),
            discriminator_widths=(64, 128),
            dropout=0.0,
            loss="non_saturating",
            r1_weight=0.0,
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 2e-4
    c.optim.b1 = 0.5
    c.optim.weight_decay = 0.0
    c.optim.warmup_steps = 0
    # One optimizer per parameter group (here alike; set either group's lr on its own with
    # --config.optim_groups.discriminator.lr=...).
    c.optim_groups = ml_collections.ConfigDict(
        {group: c.optim.copy_and_resolve_references() for group in ("discriminator", "generator")}
    )
    return c
