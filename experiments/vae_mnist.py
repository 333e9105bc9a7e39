"""VAE on the MNIST subset (notes 001 §4, 004): the small CNN to a 16-dimensional Gaussian
posterior, an MLP decoder to Bernoulli pixels, dynamically binarised digits (the setting of the
published MNIST likelihoods); the logged ``elbo`` is in nats per image. β-VAE:
``--config.objective.beta=4``.

python -m ssl_jax.train --config experiments/vae_mnist.py --workdir runs/vae_mnist
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
            name="vae",
            latent_dim=16,
            decoder_hidden_dims=(512, 512),
            beta=1.0,
            beta_warmup_steps=200,  # the KL weight rises from 0 (keeps z in use early on)
            binarize=True,
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.weight_decay = 0.0
    c.optim.warmup_steps = 50
    return c
