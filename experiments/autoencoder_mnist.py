"""Deep autoencoder on the MNIST subset: compression as the pretext task (notes 001 §3.2.3).

python -m ssl_jax.train --config experiments/autoencoder_mnist.py --workdir runs/ae_mnist
"""

import ml_collections

from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 128
    c.num_steps = 1000
    c.log_every = 50
    c.checkpoint_every = 500

    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="flatten")
    )
    c.objective = ml_collections.ConfigDict(
        dict(
            name="autoencoder",
            code_dim=64,  # the bottleneck: 784 pixels → 64 numbers
            decoder_hidden_dims=(512,),
            reconstruction="bernoulli",  # or "mse"
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 50
    return c
