"""BEiT-style masked image modelling on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), BEiT's
recipe (Bao et al. 2022) scaled to 32 × 32 images: ViT-Tiny (dim 192, 12 blocks, 3 heads) on
4 × 4 patches (an 8 × 8 grid), blockwise masks of 40% (26 of 64 patches, rectangles of at
least 4), the cross-entropy over the codes of a frozen VQ-VAE tokenizer on the hidden patches;
random resized crops (0.2–1) and flips; AdamW with β₂ = 0.999, weight decay 0.05, gradient
norm clipped at 3, base learning rate 1.5e-3 at batch 2048 scaled linearly, 10 warm-up epochs
of 800.

The tokenizer is a vq_vae run on CIFAR-10 whose two-stage small CNN maps 32 × 32 to the same
8 × 8 grid, with the gradient-trained codebook (a parameter that init_from loads). Two
commands, the tokenizer first:

    python -m ssl_jax.train --config experiments/vq_vae_mnist_tfds.py \\
        --workdir runs/vq_tokenizer_cifar10 --config.dataset=tfds:cifar10 \\
        --config.num_steps=20000 --config.model.widths='(64, 128)' \\
        --config.objective.num_codes=512 --config.objective.code_dim=32 \\
        --config.objective.ema=False --config.objective.restart_dead_codes=False
    python -m ssl_jax.train --config experiments/beit_cifar10.py --workdir runs/beit_cifar10 \\
        --config.init_from.workdir=runs/vq_tokenizer_cifar10
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults
from ssl_jax.objectives.beit import tokenizer_init_from

EPOCHS = 800
TRAIN_IMAGES = 50_000


def get_config():
    c = base_config()
    c.dataset = "tfds:cifar10"
    c.batch_size = 512
    c.num_steps = EPOCHS * TRAIN_IMAGES // c.batch_size
    c.log_every = 100
    c.checkpoint_every = 5000
    c.model = ml_collections.ConfigDict(
        dict(
            name="vit_tiny",
            patch_size=4,
            dim=192,
            depth=12,
            num_heads=3,
            pool="mean",
            position="sincos",
        )
    )
    c.objective = ml_collections.ConfigDict(
        dict(
            name="beit",
            **{
                **objective_defaults("beit"),
                "mask_ratio": 0.4,
                "min_mask_patches": 4,
                # The vq_vae run of the docstring: two stages, 32 × 32 → 8 × 8 codes.
                "tokenizer": dict(
                    model=dict(name="small_cnn", widths=(64, 128), convs_per_stage=1, pool="avg"),
                    num_codes=512,
                    code_dim=32,
                ),
                "crop_scale": (0.2, 1.0),
                "flip": True,
            },
        )
    )
    c.init_from.modules = tokenizer_init_from()
    c.init_from.frozen = True
    c.optim.name = "adamw"
    c.optim.lr = 1.5e-3 / 8  # BEiT's 1.5e-3 at batch 2048, per 256 images
    c.optim.lr_scaling = "linear"  # 3.75e-4 at batch 512
    c.optim.b2 = 0.999
    c.optim.weight_decay = 0.05
    c.optim.clip_norm = 3.0
    c.optim.warmup_steps = 10 * TRAIN_IMAGES // c.batch_size
    return c
