"""Content vs style where the style is a colour (``colour_digits``: the MNIST-subset digits in
ten colours; notes 004, 003): experiments/content_style_glyphs.py with the colour as the style
label, for 1,000 steps, its content encoder normalising the image itself as well. Instance
normalisation strips a colour from the content code and AdaIN puts it back, so here the two
codes separate: content → digit high and colour near chance, style the reverse
(docs/disentanglement.md gives a measured run).

python -m ssl_jax.train --config experiments/content_style_colour_digits.py \
    --workdir runs/content_style_colour_digits
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "content_style_glyphs.py"))
    c.dataset = "colour_digits"
    c.num_steps = 1000
    c.checkpoint_every = 500
    c.objective.style_label = "colour"
    # The content encoder instance-normalises the image too: a coloured digit's channels are
    # one grey picture times the colour, so they all reach it as the same normalised picture.
    c.objective.normalize_input = True
    return c
