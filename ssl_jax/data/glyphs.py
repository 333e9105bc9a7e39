"""``glyphs``: letters rendered in several typefaces, labelled by character and by font.

Images with two known factors, content × style (notes 003 and 004: disentangling content from
style, as content from speaker in speech): the 26 lower-case letters in ``FONTS``, the ten
TrueType faces that ship inside matplotlib's wheel (DejaVu Sans, Sans Bold, Sans Oblique, Sans
Mono, Serif, Serif Bold Italic; STIX General; Computer Modern roman, sans serif, typewriter),
so nothing is downloaded and no system font is needed. Each glyph is drawn white on black with
Pillow at a random size (18–22 px) and a random offset (±2 px), centred on a 32×32 canvas,
``SAMPLES`` times per letter × font (seed 0): 5,200 images, [32, 32, 1] uint8. Labels
``character`` (26 classes) and ``font`` (10). Held out: 1,040, stratified on letter × font.
"""

import functools
import os

import numpy as np

FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
)
CHARACTERS = "abcdefghijklmnopqrstuvwxyz"
SIZE = 32
SAMPLES = 20
TEST_SIZE = 1040


def font_path(name: str) -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", name)


def render(character: str, font_file: str, size: int, offset: tuple[int, int]) -> np.ndarray:
    """One glyph, white on black, its ink box centred on the canvas and moved by ``offset``."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path(font_file), size)
    canvas = Image.new("L", (SIZE, SIZE), 0)
    left, top, right, bottom = font.getbbox(character)
    x = (SIZE - (right - left)) / 2 - left + offset[0]
    y = (SIZE - (bottom - top)) / 2 - top + offset[1]
    ImageDraw.Draw(canvas).text((x, y), character, fill=255, font=font)
    return np.asarray(canvas)


@functools.cache
def _glyph_arrays():
    rng = np.random.default_rng(0)
    images, characters, fonts = [], [], []
    for font_index, font_file in enumerate(FONTS):
        for char_index, character in enumerate(CHARACTERS):
            for _ in range(SAMPLES):
                size = int(rng.integers(18, 23))
                offset = tuple(int(v) for v in rng.integers(-2, 3, 2))
                images.append(render(character, font_file, size, offset))
                characters.append(char_index)
                fonts.append(font_index)
    arrays = {
        "images": np.stack(images)[..., None],
        "character": np.asarray(characters, np.int32),
        "font": np.asarray(fonts, np.int32),
    }
    for array in arrays.values():
        array.flags.writeable = False
    return arrays


def load_glyphs():
    from ssl_jax.data.datasets import split_examples

    arrays = _glyph_arrays()
    strata = arrays["character"] * len(FONTS) + arrays["font"]
    labels = {"character": {"kind": "label"}, "font": {"kind": "label"}}
    return split_examples("glyphs", arrays, TEST_SIZE, stratify=strata, **labels)
