"""DINO on the 5,000-image MNIST subset (the methods table in docs/multiview.md).

Multi-crop: two 28×28 global crops (scale 0.5–1, as every method's digits views) and four
12×12 local crops (scale 0.2–0.5) that only the student sees, so the encoder pools globally
(small CNN, ``pool="avg"``). The paper's τ_s = 0.1, τ_t = 0.04, centre momentum 0.9 and
cosine teacher momentum (from 0.99 here, a short run); a head scaled to digits: 512-wide MLP
with batch norm, 128-d bottleneck, K = 256 prototypes.

python -m ssl_jax.train --config experiments/dino_mnist.py --workdir runs/dino_mnist

The collapse ablations of the docs: ``--config.objective.centering=False`` (no centring) and
``--config.objective.teacher_temp=0.1 --config.objective.warmup_teacher_temp=0.1`` (τ_t = τ_s,
no sharpening).
"""

from ssl_jax.config import mnist_config


def get_config():
    c = mnist_config(
        "dino",
        head=dict(
            hidden_dims=(512, 512),
            bottleneck_dim=128,
            output_dim=256,
            use_bn=True,
            norm_last_layer=True,
        ),
        momentum=0.99,
        student_temp=0.1,
        teacher_temp=0.04,
        warmup_teacher_temp=0.04,
    )
    c.model.pool = "avg"  # one encoder for 28×28 and 12×12 crops
    c.aug.num_local = 4
    c.aug.local_size = 12
    c.aug.local_scale = (0.2, 0.5)
    return c
