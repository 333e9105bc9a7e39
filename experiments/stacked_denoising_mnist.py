"""Stacked denoising autoencoder on the MNIST subset (notes 002; Vincent et al. 2010): three
sigmoid layers 784 → 512 → 256 → 128, each trained as a denoising autoencoder of the layer below
(25 % masking noise), then the whole stack fine-tuned end to end as one deep autoencoder.

    python -m ssl_jax.train --config experiments/stacked_denoising_mnist.py --workdir runs/sdae1
    python -m ssl_jax.train --config experiments/stacked_denoising_mnist.py --workdir runs/sdae2 \\
        --config.objective.stage=2 --config.init_from.workdir=runs/sdae1 \\
        --config.init_from.modules='("layer1", "decoder1")' --config.init_from.frozen=True
    python -m ssl_jax.train --config experiments/stacked_denoising_mnist.py --workdir runs/sdae3 \\
        --config.objective.stage=3 --config.init_from.workdir=runs/sdae2 \\
        --config.init_from.modules='("layer1", "decoder1", "layer2", "decoder2")' \\
        --config.init_from.frozen=True
    python -m ssl_jax.train --config experiments/stacked_denoising_mnist.py --workdir runs/sdae \\
        --config.objective.stage=3 --config.objective.finetune=True \\
        --config.init_from.workdir=runs/sdae3 --config.init_from.modules='("layer1", \\
        "decoder1", "layer2", "decoder2", "layer3", "decoder3")'

Each run reads out its stack (``encoder``: the top layer on clean digits) beside the same stack
at its random initialisation.
"""

import ml_collections

from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 128
    c.num_steps = 1000  # per stage
    c.log_every = 100
    c.checkpoint_every = 1000
    c.objective = ml_collections.ConfigDict(
        dict(
            name="stacked_denoising",
            layer_dims=(512, 256, 128),
            stage=1,
            finetune=False,
            corruption="masking",
            corruption_level=0.25,
            corrupted_weight=1.0,
            clean_weight=1.0,
            reconstruction="bernoulli",
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.weight_decay = 0.0
    c.optim.warmup_steps = 50
    return c
