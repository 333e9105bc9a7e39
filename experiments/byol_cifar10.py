"""BYOL on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), solo-learn's CIFAR recipe: ResNet-18
CIFAR stem, batch 256, LARS lr 1.0 (scaled by B/256), weight decay 1e-5, τ_base 0.99 rising to
1, heads 4096 → 256, BYOL's asymmetric views (blur 1.0/0.1 off at 32×32, solarize 0/0.2).

python -m ssl_jax.train --config experiments/byol_cifar10.py --workdir runs/byol_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "byol",
        projector=dict(hidden_dims=(4096,), output_dim=256),
        predictor=dict(hidden_dims=(4096,), output_dim=256),
        momentum=0.99,
    )
    c.aug.solarize_prob = (0.0, 0.2)
    c.aug.jitter_prob = 0.8
    c.optim.name = "lars"
    c.optim.lr = 1.0
    c.optim.lr_scaling = "linear"
    c.optim.weight_decay = 1e-5
    return c
