"""BEiT-style masked image modelling on the MNIST subset (notes 001 §3.3.1 (6)): a small ViT
(patch 4: a 7 × 7 grid) predicts, at the patches hidden by blockwise masks (40%: 20 of 49, in
rectangles of at least 4 patches), the codes that a frozen VQ-VAE tokenizer gives the whole
image; the cross-entropy over its 64 codes on the hidden patches only. The tokenizer is a
finished vq_vae run whose two-stage small CNN maps 28 × 28 to the same 7 × 7 grid, with the
gradient-trained codebook (a parameter that init_from loads; the EMA codebook is not one).
Read out: the mean of the encoder's final patch tokens on whole, unmasked images.

Two commands: the tokenizer first (experiments/vq_vae_mnist.py with two stages and the
gradient codebook), then BEiT on it:

    python -m ssl_jax.train --config experiments/vq_vae_mnist.py --workdir runs/vq_tokenizer \\
        --config.model.widths='(32, 64)' --config.objective.ema=False \\
        --config.objective.restart_dead_codes=False
    python -m ssl_jax.train --config experiments/beit_mnist.py --workdir runs/beit_mnist \\
        --config.init_from.workdir=runs/vq_tokenizer
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults
from ssl_jax.objectives.beit import tokenizer_init_from


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
            name="beit",
            **{
                **objective_defaults("beit"),
                "mask_ratio": 0.4,
                "min_mask_patches": 4,  # BEiT's 16 of a 14 × 14 grid, scaled to 7 × 7
                # experiments/vq_vae_mnist.py with model.widths=(32, 64): 7 × 7 codes.
                "tokenizer": dict(
                    model=dict(name="small_cnn", widths=(32, 64), convs_per_stage=1, pool="avg"),
                    num_codes=64,
                    code_dim=16,
                ),
                "crop_scale": (0.5, 1.0),  # digits fill the frame: milder crops
                "flip": False,  # a mirrored 2 is not a 2
            },
        )
    )
    # The tokenizer: --config.init_from.workdir=<the vq_vae run>; loaded frozen.
    c.init_from.modules = tokenizer_init_from()
    c.init_from.frozen = True
    # BEiT's optimizer: AdamW, β₂ = 0.999, weight decay 0.05, gradient norm clipped at 3.
    c.optim.name = "adamw"
    c.optim.lr = 1.5e-3
    c.optim.b2 = 0.999
    c.optim.weight_decay = 0.05
    c.optim.clip_norm = 3.0
    c.optim.warmup_steps = 50
    return c
