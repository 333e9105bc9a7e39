"""BERT masked language modelling on IMDB reviews (TFDS ``imdb_reviews``), the real-use config.

python -m ssl_jax.train --config experiments/bert_mlm_imdb.py --workdir runs/bert_mlm_imdb

Field mapping: ``text`` → ``tokens`` (`ssl_jax.data.tfds`: tokenized, a vocabulary of the
training split's reviews, cut or 0-padded to ``data.text_length`` = 128 ids; the vocabulary
has no [MASK], so the objective adds one embedding row for it), ``label`` (positive /
negative) → ``labels``, which the readout probes on the pooled token states. The training
split's 25,000 reviews; ``test`` held out.
"""

import ml_collections

from ssl_jax.config import base_config
from ssl_jax.objectives import bert_mlm


def get_config():
    c = base_config()
    c.dataset = "tfds:imdb_reviews:train"
    c.data.text_length = 128
    c.batch_size = 256
    c.num_steps = 20_000
    c.log_every = 200
    c.checkpoint_every = 2000
    c.model = ml_collections.ConfigDict(
        dict(name="token_transformer", dim=256, depth=4, num_heads=4, max_length=128)
    )
    c.objective = ml_collections.ConfigDict(dict(name="bert_mlm", **bert_mlm.DEFAULTS))
    c.optim.name = "adamw"
    c.optim.lr = 5e-4
    c.optim.warmup_steps = 1000
    c.optim.weight_decay = 0.01
    c.optim.clip_norm = 1.0
    return c
