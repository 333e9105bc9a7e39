"""SimSiam on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), solo-learn's CIFAR recipe
(scripts/pretrain/cifar/simsiam.yaml): ResNet-18 CIFAR stem, batch 256, SGD lr 0.5 (scaled by
B/256) momentum 0.9, weight decay 1e-5, 1000 epochs; projector 2048 → 2048 with a final BN,
predictor 512 → 2048 (Chen & He 2021's CIFAR heads: a 2-layer projector, the ¼ bottleneck);
solo-learn's "symmetric_weak" views (crops 0.08–1, jitter 0.8 with saturation 0.4, grayscale
0.2, blur 0.5). The paper keeps the predictor's learning rate fixed; here it decays with the
rest.

python -m ssl_jax.train --config experiments/simsiam_cifar10.py --workdir runs/simsiam_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "simsiam",
        projector=dict(hidden_dims=(2048,), output_dim=2048, last_bn=True),
        predictor=dict(hidden_dims=(512,), output_dim=2048),
    )
    c.aug.saturation = 0.4
    c.aug.blur_prob = 0.5
    c.optim.name = "sgd"
    c.optim.lr = 0.5
    c.optim.lr_scaling = "linear"
    c.optim.momentum = 0.9
    c.optim.weight_decay = 1e-5
    return c
