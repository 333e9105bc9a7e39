"""MoCo v2 on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), solo-learn's CIFAR recipe
("MoCo v2+"): ResNet-18 CIFAR stem, batch 256, SGD lr 0.3 momentum 0.9, weight decay 1e-4,
τ = 0.2, a 65,536-key queue, momentum 0.99 rising to 1, symmetric loss, head 2048 → 256.

python -m ssl_jax.train --config experiments/moco_v2_cifar10.py --workdir runs/moco_v2_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "moco_v2",
        temperature=0.2,
        queue_size=65536,
        momentum=0.99,
        momentum_schedule="cosine",
        symmetric=True,
        projector=dict(hidden_dims=(2048,), output_dim=256),
    )
    c.optim.name = "sgd"
    c.optim.lr = 0.3
    c.optim.weight_decay = 1e-4
    return c
