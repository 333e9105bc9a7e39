"""Content vs style on colour digits with a categorical style code (notes 004, 003):
experiments/content_style_colour_digits.py with the style one of 16 categories, for 2,000 steps.

The vector style code of that config tells the colour, and with it the amount of ink, which
reads the digit at 0.26 (chance 0.10). A category holds nothing but which category it is, so
here the style code reads the colour and the digit at chance, while the content code keeps the
digit (docs/disentanglement.md gives a measured run).

python -m ssl_jax.train --config experiments/content_style_colour_digits_categorical.py \
    --workdir runs/content_style_categorical
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(__file__), "content_style_colour_digits.py"))
    # More categories than the ten colours: at K = 10 colours merged (0.54 read back after
    # 1,000 steps, against 0.77-0.80 at K = 16 or 32).
    c.objective.style_categories = 16
    c.num_steps = 2000  # at 1,000 steps some colours still share a category (0.80 against 0.92)
    return c
