"""Content vs style on the glyphs (26 letters × 10 typefaces; notes 004, 003): an
instance-normalised content encoder, a style encoder reading another glyph of the same font,
an AdaIN decoder, and a font classifier on the content code that the content encoder learns
to confuse. The readout probes both codes on both labels.

python -m ssl_jax.train --config experiments/content_style_glyphs.py \
    --workdir runs/content_style_glyphs
"""

import ml_collections

from ssl_jax.config import base_config, objective_defaults


def get_config():
    c = base_config()
    c.dataset = "glyphs"
    c.batch_size = 128
    c.num_steps = 2000
    c.log_every = 100
    c.checkpoint_every = 1000
    c.objective = ml_collections.ConfigDict(
        dict(name="content_style", **objective_defaults("content_style"))
    )
    c.optim.name = "adamw"
    c.optim.lr = 1e-3
    c.optim.weight_decay = 0.0
    c.optim.warmup_steps = 50
    return c
