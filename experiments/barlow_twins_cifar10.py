"""Barlow Twins on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), solo-learn's CIFAR recipe
(scripts/pretrain/cifar/barlow.yaml): ResNet-18 CIFAR stem, batch 256, LARS lr 0.3 (scaled by
B/256), weight decay 1e-4, 1000 epochs; projector 2048-2048-2048 (Zbontar et al. 2021's
3-layer MLP, narrower), λ = 0.0051, the loss scaled by 0.1; BYOL's asymmetric views (solarize
0/0.2, blur off at 32×32). LARS runs with optax's trust coefficient 0.001 (solo-learn:
η = 0.02, with its learning-rate clipping).

python -m ssl_jax.train --config experiments/barlow_twins_cifar10.py \
    --workdir runs/barlow_twins_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "barlow_twins",
        projector=dict(hidden_dims=(2048, 2048), output_dim=2048),
        lambd=0.0051,
        scale_loss=0.1,
    )
    c.aug.solarize_prob = (0.0, 0.2)
    c.optim.name = "lars"
    c.optim.lr = 0.3
    c.optim.lr_scaling = "linear"
    c.optim.weight_decay = 1e-4
    return c
