"""Masked autoencoder on the MNIST subset (notes 001 §3.3.1): a small ViT (patch 4: a 7 × 7
grid, 12 of 49 patches visible at MAE's 75% masking) with fixed sine-cosine position
embeddings, a 2-block decoder, the loss on the hidden patches' per-patch-normalised pixels;
MAE's optimizer (AdamW, β₂ = 0.95, weight decay 0.05). Read out: the mean of the encoder's
final patch tokens on whole, unmasked images.

python -m ssl_jax.train --config experiments/mae_mnist.py --workdir runs/mae_mnist
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 256
    c.num_steps = 1000
    c.log_every = 50
    c.checkpoint_every = 500
    c.model = ml_collections.ConfigDict(
        dict(
            name="vit_tiny",
            patch_size=4,
            dim=128,
            depth=4,
            num_heads=4,
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
                "decoder_dim": 64,
                "decoder_depth": 2,
                "decoder_heads": 4,
                "crop_scale": (0.5, 1.0),  # digits fill the frame: milder crops than MAE's 0.2
                "flip": False,  # a mirrored 2 is not a 2
            },
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 1.5e-3
    c.optim.b2 = 0.95
    c.optim.weight_decay = 0.05
    c.optim.warmup_steps = 50
    return c
