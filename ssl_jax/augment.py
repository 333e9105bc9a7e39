"""Image augmentations as pure JAX functions of ``(image, key)``, run on device.

Each op takes one HWC float32 image in [0, 1] and its own PRNG key and returns an image of
the same dtype in [0, 1]; `make_views` vmaps the composed pipeline over a batch with one key
per example and per view. Every op applied with probability ``prob`` is exactly the identity
when ``prob == 0``, and the jitter ops are exactly the identity at zero strength.

The views of SimCLR (notes 001 §3.4.1; 002): random resized crop, horizontal flip, colour
jitter (brightness, contrast, saturation, hue in a random order), random grayscale, Gaussian
blur, and BYOL's solarization; DINO's multi-crop adds small local crops.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax.errors import UserError

_GRAY_WEIGHTS = jnp.array([0.299, 0.587, 0.114], jnp.float32)  # ITU-R 601 luma


def default_config() -> ml_collections.ConfigDict:
    """SimCLR's ImageNet augmentation settings (Chen et al. 2020, appendix A)."""
    return ml_collections.ConfigDict(
        dict(
            num_global=2,
            global_size=None,  # None: the input size
            global_scale=(0.08, 1.0),
            ratio=(3 / 4, 4 / 3),
            num_local=0,
            local_size=12,
            local_scale=(0.05, 0.4),
            flip_prob=0.5,
            jitter_prob=0.8,
            brightness=0.4,
            contrast=0.4,
            saturation=0.2,
            hue=0.1,
            grayscale_prob=0.2,
            blur_prob=0.5,
            blur_sigma=(0.1, 2.0),
            solarize_prob=0.0,
        )
    )


def _coin(key, prob):
    return jax.random.uniform(key) < prob


def _apply_with_prob(key, prob, transform, image):
    """``transform(image)`` with probability ``prob``, else ``image`` unchanged."""
    if prob == 0:
        return image
    return jnp.where(_coin(key, prob), transform(image), image)


def _grayscale(image):
    """Luma of an RGB image, [H, W, 1]; a one-channel image is returned as it is."""
    if image.shape[-1] == 1:
        return image
    return jnp.tensordot(image, _GRAY_WEIGHTS, axes=[[-1], [0]])[..., None]


def random_resized_crop(image, key, *, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """A crop covering ``scale`` of the area with aspect ratio in ``ratio``, resized to ``size``.

    As in Inception / SimCLR: draw the area fraction uniformly in ``scale`` and the log aspect
    ratio uniformly in log ``ratio``; of 10 such draws the first that fits inside the image is
    used (all 10 are drawn at once, no loop), else the largest central crop within ``ratio``.
    Resampling is bilinear with antialiasing, through `jax.image.scale_and_translate`, so the
    output shape is static whatever the crop.
    """
    height, width, channels = image.shape
    out_h, out_w = (size, size) if isinstance(size, int) else tuple(size)
    area_key, ratio_key, y_key, x_key = jax.random.split(key, 4)
    tries = 10
    area = height * width * jax.random.uniform(area_key, (tries,), minval=scale[0], maxval=scale[1])
    log_ratio = jax.random.uniform(
        ratio_key, (tries,), minval=math.log(ratio[0]), maxval=math.log(ratio[1])
    )
    crop_w = jnp.sqrt(area * jnp.exp(log_ratio))
    crop_h = jnp.sqrt(area / jnp.exp(log_ratio))
    fits = (crop_w <= width) & (crop_h <= height)
    first = jnp.argmax(fits)
    # Fallback: the whole image, narrowed to the nearest allowed aspect ratio.
    image_ratio = width / height
    fallback_w = width if image_ratio <= ratio[1] else height * ratio[1]
    fallback_h = height if image_ratio >= ratio[0] else width / ratio[0]
    crop_w = jnp.where(fits.any(), crop_w[first], fallback_w)
    crop_h = jnp.where(fits.any(), crop_h[first], fallback_h)
    top = jax.random.uniform(y_key) * (height - crop_h)
    left = jax.random.uniform(x_key) * (width - crop_w)
    # Output pixel o samples input coordinate i with o = i·s + t: the crop's top-left corner
    # goes to 0 and its extent to the output size.
    scale_yx = jnp.array([out_h / crop_h, out_w / crop_w])
    translation = -jnp.array([top, left]) * scale_yx
    resized = jax.image.scale_and_translate(
        image, (out_h, out_w, channels), (0, 1), scale_yx, translation, "linear", antialias=True
    )
    return jnp.clip(resized, 0.0, 1.0).astype(image.dtype)


def horizontal_flip(image, key, *, prob=0.5):
    """Mirrors the image left-right with probability ``prob``."""
    return _apply_with_prob(key, prob, lambda x: x[:, ::-1], image)


def _adjust_brightness(image, factor):
    return jnp.clip(image * factor, 0.0, 1.0)


def _adjust_contrast(image, factor):
    mean = jnp.mean(_grayscale(image))
    return jnp.clip((image - mean) * factor + mean, 0.0, 1.0)


def _adjust_saturation(image, factor):
    gray = _grayscale(image)
    return jnp.clip((image - gray) * factor + gray, 0.0, 1.0)


def _rgb_to_hsv(rgb):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = jnp.max(rgb, axis=-1)
    minimum = jnp.min(rgb, axis=-1)
    chroma = value - minimum
    saturation = jnp.where(value > 0, chroma / jnp.where(value > 0, value, 1.0), 0.0)
    safe = jnp.where(chroma > 0, chroma, 1.0)
    hue = jnp.where(
        value == r,
        ((g - b) / safe) % 6.0,
        jnp.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    hue = jnp.where(chroma > 0, hue / 6.0, 0.0)
    return hue, saturation, value


def _hsv_to_rgb(hue, saturation, value):
    h6 = (hue % 1.0) * 6.0
    channel = lambda n: (
        value
        - value * saturation * jnp.clip(jnp.minimum((n + h6) % 6.0, 4.0 - (n + h6) % 6.0), 0.0, 1.0)
    )
    return jnp.stack([channel(5.0), channel(3.0), channel(1.0)], axis=-1)


def _adjust_hue(image, shift):
    hue, saturation, value = _rgb_to_hsv(image)
    return jnp.clip(_hsv_to_rgb(hue + shift, saturation, value), 0.0, 1.0)


def color_jitter(image, key, *, prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1):
    """Brightness, contrast, saturation and hue changes in a random order, with prob ``prob``.

    Factors are drawn uniformly: brightness, contrast and saturation in [max(0, 1 − s), 1 + s],
    the hue shift in [−h, h] (a fraction of the colour wheel). A strength of 0 leaves that op
    out. On one-channel images saturation and hue do not apply.
    """
    order_key, apply_key, *factor_keys = jax.random.split(key, 6)
    channels = image.shape[-1]

    def factor(k, strength):
        return jax.random.uniform(k, minval=max(0.0, 1.0 - strength), maxval=1.0 + strength)

    identity = lambda x: x
    ops = [
        (lambda x: _adjust_brightness(x, factor(factor_keys[0], brightness)))
        if brightness
        else identity,
        (lambda x: _adjust_contrast(x, factor(factor_keys[1], contrast))) if contrast else identity,
        (lambda x: _adjust_saturation(x, factor(factor_keys[2], saturation)))
        if saturation and channels == 3
        else identity,
        (lambda x: _adjust_hue(x, jax.random.uniform(factor_keys[3], minval=-hue, maxval=hue)))
        if hue and channels == 3
        else identity,
    ]

    def jitter(x):
        order = jax.random.permutation(order_key, len(ops))
        for position in range(len(ops)):
            x = jax.lax.switch(order[position], ops, x)
        return x

    return _apply_with_prob(apply_key, prob, jitter, image)


def random_grayscale(image, key, *, prob=0.2):
    """Replaces the colours by their luma (kept as C channels) with probability ``prob``."""
    if image.shape[-1] == 1:
        return image
    to_gray = lambda x: jnp.broadcast_to(_grayscale(x), x.shape)
    return _apply_with_prob(key, prob, to_gray, image)


def _blur_kernel_size(height, width):
    """About 10% of the image side (SimCLR), odd, at least 3."""
    return max(3, int(0.1 * min(height, width)) // 2 * 2 + 1)


def gaussian_blur(image, key, *, prob=0.5, sigma=(0.1, 2.0)):
    """Separable Gaussian blur with σ uniform in ``sigma``, reflect padding, prob ``prob``."""
    sigma_key, apply_key = jax.random.split(key)
    height, width, _ = image.shape
    radius = _blur_kernel_size(height, width) // 2

    def blur(x):
        s = jax.random.uniform(sigma_key, minval=sigma[0], maxval=sigma[1])
        offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
        weights = jnp.exp(-0.5 * (offsets / s) ** 2)
        weights = weights / weights.sum()
        padded = jnp.pad(x, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
        x = sum(weights[i] * padded[i : i + height] for i in range(2 * radius + 1))
        padded = jnp.pad(x, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
        x = sum(weights[i] * padded[:, i : i + width] for i in range(2 * radius + 1))
        return jnp.clip(x, 0.0, 1.0)

    return _apply_with_prob(apply_key, prob, blur, image)


def solarize(image, key, *, prob=0.0, threshold=0.5):
    """Inverts the pixels at or above ``threshold`` (x → 1 − x) with probability ``prob``."""
    return _apply_with_prob(key, prob, lambda x: jnp.where(x >= threshold, 1.0 - x, x), image)


def _per_view(value, view_index):
    """A setting given as a scalar or one value per global view (locals use the first)."""
    if isinstance(value, tuple | list):
        return value[view_index] if view_index < len(value) else value[0]
    return value


def augment_view(image, key, config, view_index: int = 0):
    """One augmented view of one HWC image: crop, flip, jitter, grayscale, blur, solarize.

    Views ``0 .. num_global − 1`` are global crops (``global_size``, ``global_scale``), the
    following ``num_local`` are local crops (``local_size``, ``local_scale``).
    """
    is_local = view_index >= config.num_global
    p = lambda value: _per_view(value, 0 if is_local else view_index)
    height, width, _ = image.shape
    if is_local:
        size, scale = config.local_size, tuple(config.local_scale)
    else:
        size, scale = config.global_size or (height, width), tuple(config.global_scale)
    keys = jax.random.split(key, 6)
    x = random_resized_crop(image, keys[0], size=size, scale=scale, ratio=tuple(config.ratio))
    x = horizontal_flip(x, keys[1], prob=p(config.flip_prob))
    x = color_jitter(
        x,
        keys[2],
        prob=p(config.jitter_prob),
        brightness=config.brightness,
        contrast=config.contrast,
        saturation=config.saturation,
        hue=config.hue,
    )
    x = random_grayscale(x, keys[3], prob=p(config.grayscale_prob))
    x = gaussian_blur(x, keys[4], prob=p(config.blur_prob), sigma=tuple(config.blur_sigma))
    return solarize(x, keys[5], prob=p(config.solarize_prob))


def validate_config(config) -> None:
    """Raises a `UserError` naming the first setting out of range."""

    def check(ok, message):
        if not ok:
            raise UserError(f"aug.{message}")

    for name in ("global_scale", "local_scale"):
        lo, hi = config[name]
        check(0 < lo <= hi <= 1, f"{name} must satisfy 0 < min <= max <= 1, got {(lo, hi)}.")
    lo, hi = config.ratio
    check(0 < lo <= hi, f"ratio must satisfy 0 < min <= max, got {(lo, hi)}.")
    for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
        values = config[name] if isinstance(config[name], tuple | list) else (config[name],)
        check(all(0 <= v <= 1 for v in values), f"{name} must lie in [0, 1], got {config[name]}.")
    for name in ("brightness", "contrast", "saturation"):
        check(config[name] >= 0, f"{name} must be >= 0, got {config[name]}.")
    check(0 <= config.hue <= 0.5, f"hue must lie in [0, 0.5], got {config.hue}.")
    lo, hi = config.blur_sigma
    check(0 < lo <= hi, f"blur_sigma must satisfy 0 < min <= max, got {(lo, hi)}.")
    check(config.num_global >= 1, f"num_global must be >= 1, got {config.num_global}.")
    check(config.num_local >= 0, f"num_local must be >= 0, got {config.num_local}.")
    check(config.local_size >= 1, f"local_size must be >= 1, got {config.local_size}.")


def make_views(images, key, config) -> list[jax.Array]:
    """Augmented views of a batch: ``num_global`` global then ``num_local`` local views.

    Args:
      images: [B, H, W, C] float32 in [0, 1].
      key: PRNG key; view v of example b uses ``split(fold_in(key, v), B)[b]``.
      config: the ``aug`` config (see `default_config`).

    Returns:
      A list of [B, S, S, C] global views followed by [B, s, s, C] local views.
    """
    validate_config(config)
    views = []
    for view_index in range(config.num_global + config.num_local):
        keys = jax.random.split(jax.random.fold_in(key, view_index), images.shape[0])
        one_view = lambda image, k, v=view_index: augment_view(image, k, config, v)
        views.append(jax.vmap(one_view)(images, keys))
    return views
