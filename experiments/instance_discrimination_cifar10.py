"""Instance discrimination with a memory bank on CIFAR-10 (TFDS, prepared under
$TFDS_DATA_DIR), following the authors' CIFAR script (Wu et al. 2018, lemniscate cifar.py) on
ssl_jax's CIFAR base: ResNet-18 CIFAR stem with a linear projection to 128-d, SGD momentum 0.9
with weight decay 5e-4, lr 0.1 at their batch 128 (0.2 at batch 256, scaled linearly; warmup
and cosine decay here where they keep it constant), 200 epochs; τ = 0.1, memory-bank
momentum λ = 0.5; one view per image: random resized crop 0.2–1, colour jitter 0.4 (hue 0.4),
grayscale 0.2, no flips. A bank of 50,000 rows with the exact non-parametric softmax over all
of them (the paper's Table 1 compares it with NCE; NCE with m = 4,096 noise rows, their
script's default and the paper's ImageNet setting, is ``--config.objective.loss=nce``).

The batches must carry each example's index (``batch["index"]``).

python -m ssl_jax.train --config experiments/instance_discrimination_cifar10.py \\
    --workdir runs/instance_discrimination_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "instance_discrimination",
        epochs=200,
        projector=dict(hidden_dims=(), output_dim=128),
        temperature=0.1,
        loss="softmax",
        num_negatives=4096,
        bank_size=50_000,
        bank_momentum=0.5,
    )
    c.aug.num_global = 1
    c.aug.global_scale = (0.2, 1.0)
    c.aug.flip_prob = 0.0
    c.aug.saturation = 0.4
    c.aug.hue = 0.4
    c.optim.name = "sgd"
    c.optim.lr = 0.2
    c.optim.lr_scaling = "linear"
    c.optim.momentum = 0.9
    c.optim.weight_decay = 5e-4
    return c
