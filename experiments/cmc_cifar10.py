"""CMC on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR): the L and ab channels of CIE Lab.

Tian, Krishnan & Isola, "Contrastive Multiview Coding", 2020, ImageNet L–ab setting: one
encoder per view (here two ResNet-18s with the CIFAR stem, on the L channel and on the ab
channels), a linear 128-d head per view, τ = 0.07, SGD with momentum 0.9 and weight decay 1e-4,
both views cut from one random resized crop (scale 0.2–1) with a horizontal flip and no colour
augmentation (greyscale or colour jitter would change what ab holds). Scaled to CIFAR as
solo-learn scales its InfoNCE methods (MoCo v2+): batch 256, SGD lr 0.3, warmup then cosine,
1000 epochs. The paper's memory bank of 16,384 negatives is replaced by the global batch's
255 (in-batch InfoNCE, both directions).

python -m ssl_jax.train --config experiments/cmc_cifar10.py --workdir runs/cmc_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "cmc",
        temperature=0.07,
        views="lab",
        crops="shared",
        projector=dict(hidden_dims=(), output_dim=128),
    )
    c.aug.num_global = 1  # one crop, split into L and ab
    c.aug.global_scale = (0.2, 1.0)
    c.aug.jitter_prob = 0.0
    c.aug.grayscale_prob = 0.0
    c.optim.name = "sgd"
    c.optim.lr = 0.3
    c.optim.weight_decay = 1e-4
    return c
