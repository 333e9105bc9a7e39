"""``digit_domains``: two unpaired domains of digits, handwritten (A) and typeset (B).

The data of unpaired image-to-image translation (CycleGAN, notes 003 "Cycle-GAN"): two
collections of images that show the same kind of content in two styles, with no example of
one matched to an example of the other.

- Domain A, ``images``: the 5,000 handwritten digits of the MNIST subset (``mnist_subset``),
  28×28×1 uint8, labelled ``labels``.
- Domain B, ``images_b``: the digits 0–9 typeset in the ten faces of `ssl_jax.data.glyphs`
  (``FONTS``, shipped inside matplotlib's wheel), ``B_PER_DIGIT_FONT`` = 50 times per digit ×
  font (5,000 images), each drawn white on black with Pillow at a random size (22–28 px) and a
  random offset (±2 px) on a 32×32 canvas (`ssl_jax.data.glyphs.render`), then cut to its
  central 28×28 (the canvas margin holds no ink). Labelled ``labels_b``.

Each example carries one image of each domain: A's i-th digit beside B's image at position
π(i) of a fixed random permutation π (seed 0), so the two images of an example are unrelated
(their labels agree one time in ten, as for two independent draws) and a batch holds
unpaired A and B images. Nothing in the data says which B image matches an A image: that is
what unpaired means, and why a translation must be learnt from the two distributions alone.

Held out: 1,000 examples, stratified on A's label with seed 0 (as ``mnist_subset``: the same
1,000 handwritten digits), so no held-out image of either domain is a training image. The
readout probes each representation against both labels: a representation of ``images``
against ``labels_b`` (or of ``images_b`` against ``labels``) is at chance, the check that the
domains are unpaired.
"""

import functools

import numpy as np

DIGITS = "0123456789"
SIZE = 28  # the MNIST canvas
B_PER_DIGIT_FONT = 50
GLYPH_SIZES = (22, 29)  # Pillow font sizes drawn from [22, 29): digits 13–22 px tall (MNIST: 20)
PAIRING_SEED = 0
TEST_SIZE = 1000


def typeset_digit(digit: str, font_file: str, size: int, offset: tuple[int, int]) -> np.ndarray:
    """One digit, white on black, [SIZE, SIZE] uint8: `glyphs.render`'s canvas cut to the centre."""
    from ssl_jax.data.glyphs import SIZE as CANVAS
    from ssl_jax.data.glyphs import render

    margin = (CANVAS - SIZE) // 2
    return render(digit, font_file, size, offset)[margin : margin + SIZE, margin : margin + SIZE]


@functools.cache
def typeset_digits() -> tuple[np.ndarray, np.ndarray]:
    """Domain B: ``(images [N, 28, 28, 1] uint8, labels [N] int32)``, N = 10 · 10 fonts ·
    B_PER_DIGIT_FONT, rendered once per process (seed 0) and read-only."""
    from ssl_jax.data.glyphs import FONTS

    rng = np.random.default_rng(0)
    images, labels = [], []
    for font_file in FONTS:
        for label, digit in enumerate(DIGITS):
            for _ in range(B_PER_DIGIT_FONT):
                size = int(rng.integers(*GLYPH_SIZES))
                offset = tuple(int(v) for v in rng.integers(-2, 3, 2))
                images.append(typeset_digit(digit, font_file, size, offset))
                labels.append(label)
    images = np.stack(images)[..., None]
    labels = np.asarray(labels, np.int32)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def unpaired_examples(images_a, labels_a, images_b, labels_b, seed: int = PAIRING_SEED) -> dict:
    """Named arrays of unpaired examples: A's i-th image and label beside B's at ``π(i)``, π a
    random permutation of B (``default_rng(seed)``). A and B must hold as many images."""
    if len(images_a) != len(images_b):
        raise ValueError(f"domains of {len(images_a)} and {len(images_b)} images")
    order = np.random.default_rng(seed).permutation(len(images_b))
    return {
        "images": images_a,
        "labels": labels_a,
        "images_b": images_b[order],
        "labels_b": labels_b[order],
    }


def load_digit_domains():
    from ssl_jax.data.datasets import _mnist_subset_arrays, split_examples

    images_a, labels_a = _mnist_subset_arrays()
    arrays = unpaired_examples(images_a, labels_a, *typeset_digits())
    kinds = {"images_b": {"kind": "images"}, "labels_b": {"kind": "label"}}
    return split_examples("digit_domains", arrays, TEST_SIZE, stratify=labels_a, **kinds)
