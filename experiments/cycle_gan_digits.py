"""CycleGAN between handwritten and typeset digits (``digit_domains``; notes 003, "Cycle-GAN").

Domain A is the MNIST subset's handwritten digits, domain B the digits typeset in ten faces
(`ssl_jax.data.domains`), unpaired: each example carries one image of each domain, unrelated.
G: A → B and F: B → A (`ssl_jax.models.cycle_gan.TranslationGenerator`: 28×28×16 → 14×14×32
→ 2 residual blocks → 28×28), one convolutional discriminator per domain (28×28 → 14×14×16 →
7×7×32 → logit), the least-squares game with the cycle-consistency term at λ = 10 and the
identity term at 0.5 λ (the paper's settings), Adam at 1e-3 with β₁ = 0.5 in each group, batch
32. Small enough for a CPU: 4.5 steps/s on 2 cores, 2,000 steps in about 8 minutes.

The representations read out at the end are the generators' encoder halves (``generator_ab``
on handwritten digits, ``generator_ba`` on typeset ones), each against both labels (a
representation against the other domain's labels is at chance: the domains are unpaired);
``pictures/translations_ab_<step>.png`` shows held-out digits, G's translations and F(G(·)),
``translations_ba_<step>.png`` held-out typeset digits, F's translations and G(F(·)).
docs/adversarial.md ("CycleGAN") gives a measured run and how translations are scored.

python -m ssl_jax.train --config experiments/cycle_gan_digits.py --workdir runs/cycle_gan_digits
"""

import ml_collections

from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "digit_domains"
    c.batch_size = 32
    c.num_steps = 2000
    c.log_every = 100
    c.checkpoint_every = 500
    c.objective = ml_collections.ConfigDict(
        dict(
            name="cycle_gan",
            domains="images_b",
            generator_widths=(16, 32),
            residual_blocks=2,
            discriminator_widths=(16, 32),
            loss="least_squares",
            cycle_weight=10.0,
            identity_weight=5.0,
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.b1 = 0.5
    c.optim.weight_decay = 0.0
    c.optim.warmup_steps = 0
    c.optim_groups = ml_collections.ConfigDict(
        {group: c.optim.copy_and_resolve_references() for group in ("discriminator", "generator")}
    )
    return c
