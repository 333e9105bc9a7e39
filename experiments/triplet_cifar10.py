"""The triplet loss with batch-hard mining on CIFAR-10 (TFDS, prepared under $TFDS_DATA_DIR).
Supervised with the default ``positives="labels"``.

Source hyperparameters: FaceNet (Schroff et al. 2015) — 128-d L2-normalised embedding, margin
α = 0.2, semi-hard mining, squared distances; Hermans et al. 2017 — batch-hard mining with
Euclidean distances, 128-d embedding, Adam lr 3e-4, P × K batches (18 identities × 4). On
CIFAR-10 a uniform batch of 256 already holds about 25 images of each class, so no P × K
sampler is needed. Scaled as solo-learn scales CIFAR methods: ResNet-18 CIFAR stem, batch 256,
1000 epochs, warmup then cosine, the SimCLR views; head 2048 → 128, AdamW lr 3e-4 (Hermans et
al.'s Adam) with weight decay 1e-4. ``--config.objective.mining=semi_hard
--config.objective.squared=True`` for FaceNet's mining (its [2B, 2B, 2B] array is ~0.5 GB).

python -m ssl_jax.train --config experiments/triplet_cifar10.py --workdir runs/triplet_cifar10
"""

from ssl_jax.config import cifar10_config


def get_config():
    c = cifar10_config(
        "triplet",
        mining="batch_hard",
        margin=0.2,
        squared=False,
        positives="labels",
        projector=dict(hidden_dims=(2048,), output_dim=128),
    )
    c.optim.name = "adamw"
    c.optim.lr = 3e-4
    c.optim.weight_decay = 1e-4
    return c
