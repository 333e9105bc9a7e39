"""Instance discrimination with a memory bank on the 5,000-image MNIST subset (the methods table
in docs/multiview.md): one augmented view per image, a bank of 4,000 unit rows (one per
training image), τ = 0.07, λ = 0.5, a linear projection to 128-d. N is small, so the loss is
the exact non-parametric softmax over the whole bank rather than the paper's NCE
approximation (``--config.objective.loss=nce``).

The batches must carry each example's index (``batch["index"]``).

python -m ssl_jax.train --config experiments/instance_discrimination_mnist.py \\
    --workdir runs/instance_discrimination_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    return mnist_config(
        "instance_discrimination",
        projector=dict(hidden_dims=(), output_dim=128),
        temperature=0.07,
        loss="softmax",
        bank_size=4000,
        bank_momentum=0.5,
    )
