"""MoCo v3 on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), solo-learn's CIFAR recipe
(scripts/pretrain/cifar/mocov3.yaml): ResNet-18 CIFAR stem, batch 256, LARS lr 0.3 (scaled by
B/256), weight decay 1e-6, 1000 epochs; τ = 0.2, momentum 0.99 rising to 1 (cosine); projector
4096 → 256 with a final BN, predictor 4096 → 256; BYOL's asymmetric views (solarize 0/0.2,
blur off at 32×32). LARS runs with optax's trust coefficient 0.001 (solo-learn: η = 0.02,
with its learning-rate clipping).

python -m ssl_jax.train --config experiments/moco_v3_cifar10.py --workdir runs/moco_v3_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "moco_v3",
        temperature=0.2,
        momentum=0.99,
        momentum_schedule="cosine",
        projector=dict(hidden_dims=(4096,), output_dim=256, last_bn=True),
        predictor=dict(hidden_dims=(4096,), output_dim=256),
    )
    c.aug.solarize_prob = (0.0, 0.2)
    c.optim.name = "lars"
    c.optim.lr = 0.3
    c.optim.lr_scaling = "linear"
    c.optim.weight_decay = 1e-6
    return c
