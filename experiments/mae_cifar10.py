"""Masked autoencoder on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), MAE's recipe (He et
al. 2022) scaled to 32 × 32 images: ViT-Tiny (dim 192, 12 blocks, 3 heads) on 4 × 4 patches
(an 8 × 8 grid, 16 of 64 patches visible at 75% masking), fixed sine-cosine position
embeddings, a 4-block decoder of width 128, per-patch-normalised pixel targets; random resized
crops (0.2–1) and flips, the only augmentations; AdamW with β₂ = 0.95 and weight decay 0.05,
base learning rate 1.5e-4 scaled by B/256, 40 warm-up epochs of 800.

python -m ssl_jax.train --config experiments/mae_cifar10.py --workdir runs/mae_cifar10
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults

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
            name="mae",
            **{
                **objective_defaults("mae"),
                "mask_ratio": 0.75,
                "norm_pix_loss": True,
                "decoder_dim": 128,
                "decoder_depth": 4,
                "decoder_heads": 4,
                "crop_scale": (0.2, 1.0),
                "flip": True,
            },
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 1.5e-4
    c.optim.lr_scaling = "linear"  # 3e-4 at batch 512
    c.optim.b2 = 0.95
    c.optim.weight_decay = 0.05
    c.optim.warmup_steps = 40 * TRAIN_IMAGES // c.batch_size
    return c
