"""BERT masked language modelling on the Lee news corpus (the embedded ``lee`` text dataset).

python -m ssl_jax.train --config experiments/bert_mlm_lee.py --workdir runs/bert_mlm_lee

64-token windows of lee_background.cor (1,750 words of ≥ 5 occurrences, 915 training
windows); 15 % of the tokens selected, 80/10/10 → [MASK] / random word / unchanged; a 4-block
bidirectional Transformer of width 128. The readout scores both representations on
WordSim-353, SimLex-999 and the analogies (`ssl_jax.evaluation.words`), trained and at random
initialisation, beside word2vec's figures in docs/word2vec.md.
"""

import ml_collections

from ssl_jax.config import base_config
from ssl_jax.objectives import bert_mlm


def get_config():
    c = base_config()
    c.dataset = "lee"
    c.batch_size = 64
    c.num_steps = 3000  # about 210 passes over the 915 windows
    c.log_every = 100
    c.checkpoint_every = 1000
    c.model = ml_collections.ConfigDict(
        dict(name="token_transformer", dim=128, depth=4, num_heads=4, max_length=64)
    )
    c.objective = ml_collections.ConfigDict(dict(name="bert_mlm", **bert_mlm.DEFAULTS))
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 200
    c.optim.weight_decay = 0.01
    c.optim.clip_norm = 1.0
    return c
