"""Context encoder on the MNIST subset (notes 002 §2.2, 001 §3.3.1; Pathak et al. 2016): two
random squares of side 7-14 hidden (zeroed) in each 28 × 28 digit, the small CNN (pooled) as the
encoder, a
Dense bottleneck to a 7 × 7 grid and a convolutional decoder (7 → 14 → 28) that fills the hole,
a DCGAN discriminator (28 → 14 → 7) on the filled digits. The inpainter minimises
0.999 · L2 on the hole + 0.001 · the non-saturating adversarial loss (the paper's weights).
Adam with β₁ = 0.5 (DCGAN's setting and the paper's) in both groups, the discriminator at a
tenth of the inpainter's rate. The representation read out at the end is the encoder's
pooled features; ``pictures/inpaintings_<step>.png`` shows held-out digits with the hole, filled,
and whole. ``--config.objective.region=central`` hides the centre 14 × 14 instead.

python -m ssl_jax.train --config experiments/context_encoder_mnist.py \
    --workdir runs/context_encoder_mnist
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 128
    c.num_steps = 1000
    c.log_every = 100
    c.checkpoint_every = 500
    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="avg")
    )
    c.objective = ml_collections.ConfigDict(
        dict(
            name="context_encoder",
            **{
                **objective_defaults("context_encoder"),
                "region": "random",
                "random_regions": 2,
                "random_region_size": (0.25, 0.5),
                "reconstruction_weight": 0.999,
                "adversarial_weight": 0.001,
                "decoder_width": 64,
                "discriminator_widths": (32, 64),
            },
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.b1 = 0.5
    c.optim.weight_decay = 0.0
    c.optim.warmup_steps = 50
    c.optim_groups = ml_collections.ConfigDict(
        {group: c.optim.copy_and_resolve_references() for group in ("discriminator", "generator")}
    )
    c.optim_groups.discriminator.lr = c.optim.lr / 10
    return c
