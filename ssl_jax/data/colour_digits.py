"""``colour_digits``: the MNIST-subset digits drawn in ten colours, labelled by digit and by
colour: content × style data whose style is a per-image colour.

Each of the 5,000 digits (``labels``) is drawn in one of the ten foreground colours of
``COLOURS`` on black (``colour``, the colour's index): pixel = intensity / 255 · RGB, 28×28×3
uint8. The colours are assigned so that every digit × colour pair holds 50 images (a random
permutation per digit, seed 0), so the two labels are independent. Held out: 1,000 images,
stratified on the pair (10 of each).

The glyphs (`ssl_jax.data.glyphs`) make fonts the style, which differ in shape: serifs, slant,
stroke contrast. Here the style is a colour, a per-channel statistic of the image, the kind of
style that instance normalisation removes from a content code and AdaIN puts back (notes 004);
the two datasets bracket what `content_style` can separate.
"""

import numpy as np

# Ten well-separated foreground colours (RGB).
COLOURS = (
    ("red", (230, 25, 75)),
    ("green", (60, 180, 75)),
    ("yellow", (255, 225, 25)),
    ("blue", (0, 130, 200)),
    ("orange", (245, 130, 48)),
    ("purple", (145, 30, 180)),
    ("cyan", (70, 240, 240)),
    ("magenta", (240, 50, 230)),
    ("white", (255, 255, 255)),
    ("brown", (170, 110, 40)),
)
COLOUR_SEED = 0
TEST_SIZE = 1000


def balanced_colours(labels: np.ndarray, seed: int = COLOUR_SEED) -> np.ndarray:
    """A colour index [N] per example such that each label's examples take every colour equally
    often (each label's count must divide by the number of colours)."""
    rng = np.random.default_rng(seed)
    colours = np.empty(len(labels), np.int32)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        if len(where) % len(COLOURS):
            raise ValueError(f"{len(where)} examples of label {label} for {len(COLOURS)} colours")
        colours[where] = rng.permutation(
            np.tile(np.arange(len(COLOURS)), len(where) // len(COLOURS))
        )
    return colours


def colourise(images: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Grey images [N, H, W, 1] uint8 and colour indices [N] → [N, H, W, 3] uint8, each pixel
    its intensity times the colour."""
    rgb = np.asarray([value for _, value in COLOURS], np.float32)[colours]  # [N, 3]
    coloured = images.astype(np.float32) / 255.0 * rgb[:, None, None, :]
    return np.round(coloured).astype(np.uint8)


def load_colour_digits():
    from ssl_jax.data.datasets import _mnist_subset_arrays, split_examples

    images, labels = _mnist_subset_arrays()
    colours = balanced_colours(labels)
    arrays = {"images": colourise(images, colours), "labels": labels, "colour": colours}
    pair = labels * len(COLOURS) + colours
    return split_examples(
        "colour_digits", arrays, TEST_SIZE, stratify=pair, colour={"kind": "label"}
    )
