"""DINO on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), solo-learn's CIFAR recipe: ResNet-18
CIFAR stem, batch 256, LARS lr 0.3 (scaled by B/256) with weight decay 1e-6, 1,000 epochs;
teacher momentum 0.9995 rising to 1 (cosine); DINO head 2048 → 2048 → 256-d bottleneck →
K = 4,096 weight-normalised prototypes (norm fixed at 1) without batch norm; τ_s = 0.1 and τ_t
warming up from 0.04 to 0.07 over the first 50 epochs; centre momentum 0.9; prototypes frozen
for the first epoch; two 32×32 crops with solo-learn's asymmetric views (solarize 0 / 0.2,
blur off at 32×32). The paper (Caron et al. 2021, ImageNet): K = 65,536, 2×224² global plus
10×96² local crops; multi-crop at CIFAR scale is ``--config.aug.num_local=6
--config.aug.local_size=16`` (the ResNet pools globally, so both sizes pass).

python -m ssl_jax.train --config experiments/dino_cifar10.py --workdir runs/dino_cifar10
"""

from ssl_jax.config import cifar10_config

STEPS_PER_EPOCH = 50_000 // 256


def get_config():
    c = cifar10_config(
        "dino",
        head=dict(
            hidden_dims=(2048, 2048),
            bottleneck_dim=256,
            output_dim=4096,
            use_bn=False,
            norm_last_layer=True,
        ),
        momentum=0.9995,
        momentum_schedule="cosine",
        student_temp=0.1,
        teacher_temp=0.07,
        warmup_teacher_temp=0.04,
        warmup_teacher_temp_steps=50 * STEPS_PER_EPOCH,
        center_momentum=0.9,
        freeze_last_layer_steps=STEPS_PER_EPOCH,
    )
    c.aug.solarize_prob = (0.0, 0.2)
    c.optim.name = "lars"
    c.optim.lr = 0.3
    c.optim.lr_scaling = "linear"
    c.optim.weight_decay = 1e-6
    return c
