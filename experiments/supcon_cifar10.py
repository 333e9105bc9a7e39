"""SupCon on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR). Supervised: it reads the labels.

Khosla et al. 2020 train CIFAR at batch 1024, SGD lr 0.5 momentum 0.9, weight decay 1e-4,
τ = 0.1, 1000 epochs, head 2048 → 128. Scaled to CIFAR at batch 256 as solo-learn does
(scripts/pretrain/cifar/supcon.yaml): ResNet-18 CIFAR stem, batch 256, SGD lr 0.4 momentum 0.9,
weight decay 1e-5, warmup then cosine, 1000 epochs, head 2048 → 256, its "symmetric" views
(crops 0.08–1, flips, jitter 0.8 with strengths 0.8/0.8/0.8/0.2, grayscale 0.2). τ is the
paper's 0.1 (solo-learn uses 0.2); blur stays off as in every CIFAR config here.

python -m ssl_jax.train --config experiments/supcon_cifar10.py --workdir runs/supcon_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "supcon", temperature=0.1, projector=dict(hidden_dims=(2048,), output_dim=256)
    )
    c.aug.brightness = 0.8
    c.aug.contrast = 0.8
    c.aug.saturation = 0.8
    c.aug.hue = 0.2
    c.optim.name = "sgd"
    c.optim.lr = 0.4
    c.optim.lr_scaling = "linear"
    c.optim.momentum = 0.9
    c.optim.weight_decay = 1e-5
    return c
