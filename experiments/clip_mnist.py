"""CLIP on ``mnist_captions``: the MNIST subset with a generated caption per image (the methods
table in docs/multiview.md; the dataset in `ssl_jax.data.captions`).

The image tower is the small CNN of the other MNIST methods; the text tower a 2-layer,
128-wide token Transformer; a 128-d joint space; τ learnt from 0.07. The paper's only
augmentation is a random crop, so the views here are the MNIST crops without jitter.
After training, `ssl_jax.objectives.clip.zero_shot_classify` with the dataset's
``prompt_tokens()`` (templates no training caption uses) classifies digits from text alone.

python -m ssl_jax.train --config experiments/clip_mnist.py --workdir runs/clip_mnist
"""

from ssl_jax.config import mnist_config


def get_config():
    c = mnist_config("clip")
    c.dataset = "mnist_captions"
    c.aug.num_global = 1
    c.aug.jitter_prob = 0.0
    return c
