"""VICReg on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR), solo-learn's CIFAR recipe
(scripts/pretrain/cifar/vicreg.yaml): ResNet-18 CIFAR stem, batch 256, LARS lr 0.3 (scaled by
B/256), weight decay 1e-4, 1000 epochs; expander 2048-2048-2048 (Bardes et al. 2022's 3-layer
MLP, narrower), coefficients λ = μ = 25, ν = 1; views with crops 0.2–1, jitter 0.8 (saturation
0.2), grayscale 0.2, solarize 0.1, blur off. LARS runs with optax's trust coefficient 0.001
(solo-learn: η = 0.02, with its learning-rate clipping).

python -m ssl_jax.train --config experiments/vicreg_cifar10.py --workdir runs/vicreg_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "vicreg",
        projector=dict(hidden_dims=(2048, 2048), output_dim=2048),
        sim_coeff=25.0,
        std_coeff=25.0,
        cov_coeff=1.0,
    )
    c.aug.global_scale = (0.2, 1.0)
    c.aug.solarize_prob = 0.1
    c.optim.name = "lars"
    c.optim.lr = 0.3
    c.optim.lr_scaling = "linear"
    c.optim.weight_decay = 1e-4
    return c
