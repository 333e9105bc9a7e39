"""Gumbel-softmax VAE on the MNIST subset (notes 004; Jang et al. 2017): the small CNN to 20
categorical variables of 10 classes, relaxed samples at a temperature annealed from 1.0 to 0.5
(τ_t = max(0.5, exp(−0.001 t))), an MLP decoder to Bernoulli pixels, the KL to the uniform
prior. Straight-through one-hot samples: ``--config.objective.hard=True``.

python -m ssl_jax.train --config experiments/gumbel_vae_mnist.py --workdir runs/gumbel_vae_mnist
"""

import ml_collections

from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 128
    c.num_steps = 2000
    c.log_every = 100
    c.checkpoint_every = 1000
    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="flatten")
    )
    c.objective = ml_collections.ConfigDict(
        dict(
            name="gumbel_vae",
            num_variables=20,
            num_classes=10,
            decoder_hidden_dims=(512, 512),
            hard=False,
            temperature=1.0,
            temperature_floor=0.5,
            temperature_decay=1e-3,
            # At full weight from the start: warmed up from 0 (over 500 steps), the logits
            # saturated to one constant class per variable within 100 steps (KL at its
            # maximum, the code ignored; docs/discrete_codes.md).
            kl_warmup_steps=0,
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.weight_decay = 0.0
    c.optim.warmup_steps = 50
    return c
