"""The margin contrastive loss on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR). Supervised
with the default ``pairs="labels"``.

Chopra et al. 2005 and Hadsell et al. 2006 trained small networks on faces and MNIST, with no
CIFAR recipe to scale and none in solo-learn; this uses solo-learn's recipe for the other
label-paired contrastive method, SupCon (scripts/pretrain/cifar/supcon.yaml): ResNet-18 CIFAR
stem, batch 256, SGD lr 0.4 momentum 0.9, weight decay 1e-5, warmup then cosine, 1000 epochs,
its "symmetric" views. Head 2048 → 128 on raw (unnormalised) projections with margin 10, the
scale the MNIST runs measured (raw 128-d projections start about 10 apart); every pair of the
2B views, positives and negatives averaged separately.

python -m ssl_jax.train --config experiments/margin_contrastive_cifar10.py \
    --workdir runs/margin_contrastive_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "margin_contrastive",
        pairs="labels",
        margin=10.0,
        normalize=False,
        balance=True,
        projector=dict(hidden_dims=(2048,), output_dim=128),
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
