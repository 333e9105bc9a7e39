"""CBOW word2vec on the Lee news corpus: experiments/word2vec_lee.py in CBOW mode at α = 0.0125
on 16 windows a step.

python -m ssl_jax.train --config experiments/word2vec_lee_cbow.py --workdir runs/w2v_cbow

At gensim's α of 0.025, summed over a batch, CBOW's updates overshoot more than skip-gram's:
each context vector takes the whole gradient of every centre around it at once, where gensim
takes them one after the other. There CBOW is below gensim's CBOW on SimLex-999 (at 16 windows
a step and at 4); at half the α it scores above gensim's CBOW on both similarity sets (10
seeds): docs/word2vec.md.
"""

import math
import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "word2vec_lee.py"))
    c.objective.mode = "cbow"
    c.batch_size = 16  # the batch α 0.0125 was measured at: ~1,000 tokens a step
    c.num_steps = 20 * math.ceil(915 / c.batch_size)  # 20 epochs of the 915 training windows
    c.optim.lr = 0.0125
    return c
