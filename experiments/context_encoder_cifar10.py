"""Context encoder on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR; notes 002 §2.2, 001
§3.3.1; Pathak et al. 2016) scaled to 32 × 32 images: two random squares of side 8-16 hidden
(``--config.objective.region=central`` for the centre 16 × 16, half the side like the paper's
64 of 128), ResNet-18 with the CIFAR stem as the encoder, a Dense bottleneck to an
8 × 8 grid and a convolutional decoder (8 → 16 → 32) filling the hole, a DCGAN discriminator
(32 → 16 → 8 → 4) on the filled images; the inpainter minimises 0.999 · L2 on the hole +
0.001 · the adversarial loss. Adam with β₁ = 0.5 in both groups, the discriminator at a tenth
of the inpainter's rate, 100 epochs at batch 256. No augmentation: the image is the target.

python -m ssl_jax.train --config experiments/context_encoder_cifar10.py \
    --workdir runs/context_encoder_cifar10
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults

EPOCHS = 100
TRAIN_IMAGES = 50_000


def get_config():
    c = base_config()
    c.dataset = "tfds:cifar10"
    c.batch_size = 256
    c.num_steps = EPOCHS * TRAIN_IMAGES // c.batch_size
    c.log_every = 100
    c.checkpoint_every = 5000
    c.model = ml_collections.ConfigDict(dict(name="resnet18", stem="cifar"))
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
                "decoder_width": 128,
                "discriminator_widths": (64, 128, 256),
            },
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 2e-4
    c.optim.lr_scaling = "none"
    c.optim.b1 = 0.5
    c.optim.weight_decay = 0.0
    c.optim.warmup_steps = 2 * TRAIN_IMAGES // c.batch_size
    c.optim_groups = ml_collections.ConfigDict(
        {group: c.optim.copy_and_resolve_references() for group in ("discriminator", "generator")}
    )
    c.optim_groups.discriminator.lr = c.optim.lr / 10
    return c
