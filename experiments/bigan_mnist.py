"""BiGAN on the MNIST subset (notes 001 §3.2, 003): the small CNN (pooled) and a Dense layer as
the encoder E to a 32-number code, the DCGAN generator from N(0, I) codes, a discriminator of
(image, code) pairs (a convolutional trunk on the image, a Dense embedding of the code, a joint
hidden layer), the non-saturating game with swapped labels for E and G.

What keeps it learning (docs/adversarial.md): the R1 penalty on data pairs (γ = 3), no dropout,
Adam with β₁ = 0.5, and a discriminator learning rate four times the encoder's and generator's
(the two-time-scale rule of Heusel et al. 2017). The representations read out at the end are
the encoder's pooled features (``encoder``) and the code E(x) (``code``); ``pictures/`` holds
samples, reconstructions G(E(x)) and interpolations between codes.

python -m ssl_jax.train --config experiments/bigan_mnist.py --workdir runs/bigan_mnist
"""

import ml_collections

from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "mnist_subset"
    c.batch_size = 128
    c.num_steps = 1000
    c.log_every = 100
    c.checkpoint_every = 500
    c.model = ml_collections.ConfigDict(
        dict(name="small_cnn", widths=(32, 64, 128), convs_per_stage=1, pool="avg")
    )
    c.objective = ml_collections.ConfigDict(
        dict(
            name="bigan",
            latent_dim=32,
            # Small enough for a CPU (3 steps/s on 2 cores): 7×7×64 → 14×14×32 → 28×28, and
            # 28×28 → 14×14×32 → 7×7×64 → joint layer of 256 with a 64-number code embedding.
            generator_widths=(64, 32),
            discriminator_widths=(32, 64),
            joint_hidden_dims=(256,),
            z_embedding_dim=64,
            dropout=0.0,
            loss="non_saturating",
            r1_weight=3.0,
        )
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.b1 = 0.5
    c.optim.weight_decay = 0.0
    c.optim.warmup_steps = 0
    # Encoder and generator at optim.lr; the discriminator four times faster.
    c.optim_groups = ml_collections.ConfigDict(
        {group: c.optim.copy_and_resolve_references() for group in ("discriminator", "generator")}
    )
    c.optim_groups.discriminator.lr = 4 * c.optim.lr
    return c
