"""``photo_patches``: colour patches of the photographs that ship with scikit-image.

Eight colour photographs bundled in the scikit-image wheel (no download): ``astronaut``,
``chelsea`` (a cat), ``coffee``, ``rocket``, ``hubble_deep_field``, ``immunohistochemistry``,
``retina`` and the left image of ``stereo_motorcycle``. Each is resized (Pillow, box filter)
so that its shorter side is ``SHORT_SIDE`` = 192 pixels, and 32×32×3 uint8 patches are cut at
random positions (seed 0): ``TRAIN_PER_PHOTO`` from the left three quarters of its width and
``TEST_PER_PHOTO`` from the right quarter, so no held-out patch shares a pixel with a training
patch. The label ``labels`` is the photograph (8 classes, balanced): a probe must tell the
source from a patch's colours and textures. 4,800 training and 800 held-out patches.

This is the embedded colour data for colorization, split-brain autoencoders, inpainting,
jigsaw and relative position; CIFAR-10 and other colour TFDS datasets are the real-use
configs.
"""

import functools

import numpy as np

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
)
SHORT_SIDE = 192
PATCH = 32
TRAIN_PER_PHOTO = 600
TEST_PER_PHOTO = 100
TRAIN_FRACTION = 0.75  # of each photo's width, on the left


def read_photo(name: str) -> np.ndarray:
    """The photograph ``name`` as [H, W, 3] uint8, its shorter side resized to SHORT_SIDE."""
    import skimage.data
    from PIL import Image

    photo = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":  # (left, right, disparity)
        photo = photo[0]
    photo = photo[..., :3]
    height, width = photo.shape[:2]
    scale = SHORT_SIDE / min(height, width)
    size = (round(width * scale), round(height * scale))
    return np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BOX))


def cut_patches(photo: np.ndarray, count: int, x_range: tuple[int, int], rng) -> np.ndarray:
    """``count`` PATCH×PATCH patches whose left edges lie in ``x_range`` (inclusive)."""
    ys = rng.integers(0, photo.shape[0] - PATCH + 1, count)
    xs = rng.integers(x_range[0], x_range[1] + 1, count)
    return np.stack([photo[y : y + PATCH, x : x + PATCH] for y, x in zip(ys, xs, strict=True)])


@functools.cache
def _photo_patch_arrays():
    rng = np.random.default_rng(0)
    parts = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(PHOTOS):
        photo = read_photo(name)
        boundary = int(photo.shape[1] * TRAIN_FRACTION)
        ranges = {"train": (0, boundary - PATCH), "test": (boundary, photo.shape[1] - PATCH)}
        counts = {"train": TRAIN_PER_PHOTO, "test": TEST_PER_PHOTO}
        for split, (images, labels) in parts.items():
            images.append(cut_patches(photo, counts[split], ranges[split], rng))
            labels.append(np.full(counts[split], label, np.int32))
    arrays = {}
    for split, (images, labels) in parts.items():
        arrays[split] = {"images": np.concatenate(images), "labels": np.concatenate(labels)}
        for array in arrays[split].values():
            array.flags.writeable = False
    return arrays


def load_photo_patches():
    from ssl_jax.data.datasets import ArrayDataset

    arrays = _photo_patch_arrays()
    return ArrayDataset.from_arrays("photo_patches", arrays["train"], arrays["test"])
