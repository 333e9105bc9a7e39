"""Image augmentations as pure JAX functions of ``(image, key)``, run on device.

Each op takes one HWC float32 image in [0, 1] (C = 1 or 3) and its own PRNG key and returns a
float32 image in [0, 1]; `make_views` vmaps the composed pipeline over a batch with one key per
view and per example. Every op applied with probability ``prob`` is exactly the identity when
``prob == 0``, and colour jitter is exactly the identity at zero strength. No op branches in
Python on a traced value, so everything runs under `jax.jit` and `jax.vmap`.

The views of SimCLR (Chen et al. 2020, appendix A; notes 001 §3.4.1 "multi-view learning",
notes 002 SimCLR): random resized crop, horizontal flip, colour jitter (brightness, contrast,
saturation, hue in a random order), random grayscale and Gaussian blur; BYOL adds solarization
and per-view probabilities; DINO's multi-crop adds small local crops at another resolution.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax.errors import UserError, unknown_name

_LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601, as torchvision's rgb_to_grayscale
_CROP_TRIES = 10  # Inception / torchvision RandomResizedCrop
_PROBABILITY_FIELDS = ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob")


def default_config() -> ml_collections.ConfigDict:
    """SimCLR's augmentation settings (Chen et al. 2020, appendix A), two global views.

    Probabilities may be one number or a tuple with one value per global view (BYOL:
    ``blur_prob=(1.0, 0.1)``, ``solarize_prob=(0.0, 0.2)``); local views use the first value.
    The dict is not type-safe so that a scalar can be replaced by such a tuple;
    `validate_config` checks every field instead.
    """
    return ml_collections.ConfigDict(
        dict(
            num_global=2,
            global_size=None,  # None: the input size; else S or (H, W)
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
        ),
        type_safe=False,
    )


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_size(value) -> bool:
    """A positive int or a pair of positive ints."""
    pair = value if isinstance(value, Sequence) else (value, value)
    return len(pair) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair
    )


def validate_config(config) -> None:
    """Raises a `UserError` naming the first ``aug`` setting that is unknown or out of range.

    Call it once, outside jit (`make_views` does): it reads Python values only.
    """
    expected = default_config()
    for name in config:
        if name not in expected:
            raise unknown_name("aug setting", name, expected.keys())
    for name in expected:
        if name not in config:
            raise UserError(f"aug has no {name!r}; build it from augment.default_config().")

    def check(ok, message):
        if not ok:
            raise UserError(f"aug.{message}")

    def check_range(name, upper=None):
        value = config[name]
        ok = isinstance(value, Sequence) and len(value) == 2 and all(map(_is_number, value))
        lo, hi = value if ok else (None, None)
        ok = ok and 0 < lo <= hi and (upper is None or hi <= upper)
        bound = f" <= {upper}" if upper is not None else ""
        check(ok, f"{name} must be a pair (min, max) with 0 < min <= max{bound}, got {value!r}.")

    for name, lowest in (("num_global", 1), ("num_local", 0)):
        value = config[name]
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= lowest
        check(ok, f"{name} must be an int >= {lowest}, got {value!r}.")
    check(
        config.global_size is None or _is_size(config.global_size),
        f"global_size must be None (the input size), S or (H, W), got {config.global_size!r}.",
    )
    check(
        _is_size(config.local_size), f"local_size must be S or (H, W), got {config.local_size!r}."
    )
    check_range("global_scale", upper=1)
    check_range("local_scale", upper=1)
    check_range("ratio")
    check_range("blur_sigma")
    for name in _PROBABILITY_FIELDS:
        value = config[name]
        values = value if isinstance(value, Sequence) else (value,)
        check(
            all(_is_number(v) and 0 <= v <= 1 for v in values),
            f"{name} must lie in [0, 1] (or be one such value per global view), got {value!r}.",
        )
        check(
            not isinstance(value, Sequence) or len(value) == config.num_global,
            f"{name} has {len(values)} values but num_global is {config.num_global}; "
            "give one value per global view or a single number.",
        )
    for name in ("brightness", "contrast", "saturation"):
        value = config[name]
        check(_is_number(value) and value >= 0, f"{name} must be a number >= 0, got {value!r}.")
    check(
        _is_number(config.hue) and 0 <= config.hue <= 0.5,
        f"hue must lie in [0, 0.5] (a fraction of the colour wheel), got {config.hue!r}.",
    )


def _check_images(images, rank: int) -> None:
    """A `UserError` unless ``images`` are float with 1 or 3 channels, of the given rank."""
    layout = "[B, H, W, C]" if rank == 4 else "[H, W, C]"
    if images.ndim != rank:
        raise UserError(f"augmentations expect images {layout}, got shape {images.shape}.")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise UserError(
            f"augmentations expect float images in [0, 1], got {images.dtype}; "
            "divide uint8 images by 255 first."
        )
    if images.shape[-1] not in (1, 3):
        raise UserError(
            f"augmentations expect 1 (grey) or 3 (RGB) channels, got {images.shape[-1]}."
        )


def _coin(key, prob) -> jax.Array:
    return jax.random.uniform(key) < prob


def _apply_with_prob(key, prob, transform, image):
    """``transform(image)`` with probability ``prob``, else ``image`` itself (exactly)."""
    if prob == 0:
        return image
    # Under vmap a cond becomes a select anyway, so a select is as cheap and simpler.
    return jnp.where(_coin(key, prob), transform(image), image)


def _luma(image):
    """Grey level of an image, [H, W, 1]; a one-channel image is its own luma."""
    if image.shape[-1] == 1:
        return image
    weights = jnp.asarray(_LUMA_WEIGHTS, image.dtype)
    return jnp.tensordot(image, weights, axes=[[-1], [0]])[..., None]


# --- Random resized crop ---------------------------------------------------------------------


def sample_crop_box(key, height: int, width: int, scale, ratio) -> jax.Array:
    """A crop box ``[top, left, crop_h, crop_w]`` (float pixels) as in Inception / SimCLR.

    Each try draws the area fraction uniformly in ``scale`` and the aspect ratio w/h
    log-uniformly in ``ratio``; the first of ``_CROP_TRIES`` tries that fits inside the image
    wins (all tries are drawn at once, no loop), and its corner is uniform over the positions
    that keep it inside. If no try fits: the whole image, narrowed to the nearest ratio allowed,
    centred (torchvision's fallback).
    """
    area_key, ratio_key, corner_key = jax.random.split(key, 3)
    area = (height * width) * jax.random.uniform(
        area_key, (_CROP_TRIES,), minval=scale[0], maxval=scale[1]
    )
    aspect = jnp.exp(
        jax.random.uniform(
            ratio_key, (_CROP_TRIES,), minval=math.log(ratio[0]), maxval=math.log(ratio[1])
        )
    )
    tries_w, tries_h = jnp.sqrt(area * aspect), jnp.sqrt(area / aspect)
    fits = (tries_w <= width) & (tries_h <= height)
    first = jnp.argmax(fits)  # index of the first True; 0 when none is (then unused)
    image_ratio = width / height
    fallback_w = width if image_ratio <= ratio[1] else height * ratio[1]
    fallback_h = height if image_ratio >= ratio[0] else width / ratio[0]
    found = fits.any()
    crop_h = jnp.where(found, tries_h[first], fallback_h)
    crop_w = jnp.where(found, tries_w[first], fallback_w)
    corner = jnp.where(found, jax.random.uniform(corner_key, (2,)), 0.5)
    top, left = corner[0] * (height - crop_h), corner[1] * (width - crop_w)
    return jnp.stack([top, left, crop_h, crop_w])


def random_resized_crop(image, key, *, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random crop (see `sample_crop_box`) resized to ``size`` (S or (H, W)).

    Args:
      image: [H, W, C] float in [0, 1].
      key: PRNG key.
      size: output side S, or (out_h, out_w); crops may be up- or downsampled.
      scale: range of the crop's area as a fraction of the image's, within (0, 1].
      ratio: range of the crop's aspect ratio w/h.

    Returns:
      [out_h, out_w, C], same dtype. Bilinear resampling through
      `jax.image.scale_and_translate` (antialiased when shrinking), so the output shape is
      static whatever the crop.
    """
    height, width, channels = image.shape
    out_h, out_w = (size, size) if isinstance(size, int) else tuple(size)
    top, left, crop_h, crop_w = sample_crop_box(key, height, width, scale, ratio)
    # scale_and_translate maps input coordinate i to output o = i·s + t: the crop's corner
    # goes to 0 and its extent to the output size.
    scale_yx = jnp.stack([out_h / crop_h, out_w / crop_w])
    translation = -jnp.stack([top, left]) * scale_yx
    resized = jax.image.scale_and_translate(
        image, (out_h, out_w, channels), (0, 1), scale_yx, translation, "linear", antialias=True
    )
    return jnp.clip(resized, 0.0, 1.0).astype(image.dtype)


# --- Flip ------------------------------------------------------------------------------------


def horizontal_flip(image, key, *, prob=0.5):
    """Mirrors the image left-right with probability ``prob``. image: [H, W, C]."""
    return _apply_with_prob(key, prob, lambda x: x[:, ::-1], image)


# --- Colour jitter ---------------------------------------------------------------------------


def adjust_brightness(image, factor):
    """``clip(factor · x)``: factor 0 gives black, 1 the image. image: [H, W, C]."""
    return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image, factor):
    """Blend with the image's mean grey level m: ``clip(m + factor · (x − m))``."""
    mean = jnp.mean(_luma(image))
    return jnp.clip(mean + factor * (image - mean), 0.0, 1.0)


def adjust_saturation(image, factor):
    """Blend with each pixel's grey level g: ``clip(g + factor · (x − g))``."""
    gray = _luma(image)
    return jnp.clip(gray + factor * (image - gray), 0.0, 1.0)


def rgb_to_hsv(rgb):
    """Hue, saturation, value of RGB pixels, each [...] in [0, 1]. rgb: [..., 3] in [0, 1].

    Hue is a fraction of the colour wheel (red 0, green 1/3, blue 2/3); grey pixels get hue 0
    and black pixels saturation 0, as in Python's ``colorsys``.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = jnp.maximum(jnp.maximum(r, g), b)
    chroma = value - jnp.minimum(jnp.minimum(r, g), b)
    inv_chroma = 1.0 / jnp.where(chroma > 0, chroma, 1.0)
    sector = jnp.where(
        value == r,
        (g - b) * inv_chroma,
        jnp.where(value == g, (b - r) * inv_chroma + 2.0, (r - g) * inv_chroma + 4.0),
    )
    sector = jnp.where(sector < 0, sector + 6.0, sector)  # only the red sector goes below 0
    hue = jnp.where(chroma > 0, sector / 6.0, 0.0)
    saturation = jnp.where(value > 0, chroma / jnp.where(value > 0, value, 1.0), 0.0)
    return hue, saturation, value


def hsv_to_rgb(hue, saturation, value):
    """RGB pixels [..., 3] from hue (any real, taken mod 1), saturation and value [...].

    Channel n ∈ {R: 5, G: 3, B: 1} is ``v − v·s·clip(min(k, 4 − k), 0, 1)`` with
    ``k = (n + 6·hue) mod 6``.
    """
    sector = 6.0 * (hue - jnp.floor(hue))  # in [0, 6); floor is cheaper than a float mod

    def channel(n):
        k = n + sector
        k = jnp.where(k >= 6.0, k - 6.0, k)  # k < 12, so one subtraction is the mod
        return value - value * saturation * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)

    return jnp.stack([channel(5.0), channel(3.0), channel(1.0)], axis=-1)


def adjust_hue(image, shift):
    """Rotates the hue by ``shift`` (a fraction of the colour wheel) in HSV. image: [H, W, 3]."""
    hue, saturation, value = rgb_to_hsv(image)
    return jnp.clip(hsv_to_rgb(hue + shift, saturation, value), 0.0, 1.0)


def _jitter_blends(channels, brightness, contrast, saturation):
    """The (op, strength) pairs of brightness, contrast, saturation that apply.

    Each op is x -> op(x, factor). A zero strength leaves an op out; saturation does not exist
    for one channel.
    """
    blends = [
        (adjust_brightness, brightness),
        (adjust_contrast, contrast),
        (adjust_saturation, saturation if channels == 3 else 0.0),
    ]
    return [(op, strength) for op, strength in blends if strength > 0]


def sample_jitter(key, strengths: Sequence[float], hue: float) -> dict:
    """Random parameters of one colour jitter: the order of its ops and their factors.

    A uniform random order of n blends plus the hue shift is drawn as a uniform order of the
    blends and a uniform position for the hue shift among them.

    Args:
      key: PRNG key.
      strengths: s_k of the n blend ops that apply (brightness, contrast, saturation).
      hue: hue strength h (0: no hue shift).

    Returns:
      dict of ``order`` [n] (a permutation of range(n)), ``factors`` [n] (blend k's factor,
      uniform in [max(0, 1 − s_k), 1 + s_k]), ``hue_position`` [] (how many blends run before
      the hue shift, uniform in 0..n) and ``hue_shift`` [] (uniform in [−h, h]).
    """
    order_key, factor_key, position_key, shift_key = jax.random.split(key, 4)
    n = len(strengths)
    low = jnp.asarray([max(0.0, 1.0 - s) for s in strengths], jnp.float32)
    high = jnp.asarray([1.0 + s for s in strengths], jnp.float32)
    return dict(
        order=jax.random.permutation(order_key, n),
        factors=jax.random.uniform(factor_key, (n,), minval=low, maxval=high),
        hue_position=jax.random.randint(position_key, (), 0, n + 1),
        hue_shift=jax.random.uniform(shift_key, minval=-hue, maxval=hue),
    )


def apply_jitter(image, params: dict, blend_ops: Sequence, use_hue: bool):
    """Runs ``blend_ops`` in ``params['order']``, the hue shift inserted at its position.

    Blend k is ``blend_ops[k](x, params['factors'][k])``. Each blend step is a `lax.switch`
    inside a `fori_loop`. The hue shift runs once, between the loop over the blends before it
    and the loop over those after it: as a branch of the switch, vmap would evaluate it at
    every step, since a batched switch computes all its branches.
    """
    if not blend_ops:
        return adjust_hue(image, params["hue_shift"]) if use_hue else image

    def blend_step(step, x):
        k = params["order"][step]
        return jax.lax.switch(k, blend_ops, x, params["factors"][k])

    if not use_hue:
        return jax.lax.fori_loop(0, len(blend_ops), blend_step, image)
    x = jax.lax.fori_loop(0, params["hue_position"], blend_step, image)
    x = adjust_hue(x, params["hue_shift"])
    return jax.lax.fori_loop(params["hue_position"], len(blend_ops), blend_step, x)


def color_jitter(image, key, *, prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1):
    """Brightness, contrast, saturation and hue changes in a random order, with prob ``prob``.

    As torchvision's ColorJitter: factors uniform in [max(0, 1 − s), 1 + s] for brightness
    (``x·f``), contrast (blend with the mean grey) and saturation (blend with each pixel's
    grey), a hue rotation uniform in [−h, h] of the colour wheel (through HSV), clipped to
    [0, 1] after each op. A strength of 0 leaves that op out; on one-channel images saturation
    and hue do not apply. image: [H, W, C] -> [H, W, C].
    """
    channels = image.shape[-1]
    blends = _jitter_blends(channels, brightness, contrast, saturation)
    hue = hue if channels == 3 else 0.0
    if not blends and not hue:
        return image
    apply_key, params_key = jax.random.split(key)
    params = sample_jitter(params_key, [strength for _, strength in blends], hue)
    ops = [op for op, _ in blends]
    jitter = lambda x: apply_jitter(x, params, ops, use_hue=hue > 0)
    return _apply_with_prob(apply_key, prob, jitter, image)


# --- Grayscale, blur, solarize ---------------------------------------------------------------


def random_grayscale(image, key, *, prob=0.2):
    """Replaces the colours by their luma, kept as C channels, with probability ``prob``.

    One-channel images are already grey: returned as they are. image: [H, W, C].
    """
    if image.shape[-1] == 1:
        return image
    to_gray = lambda x: jnp.broadcast_to(_luma(x), x.shape)
    return _apply_with_prob(key, prob, to_gray, image)


def blur_kernel_size(height: int, width: int) -> int:
    """About 10% of the image side, odd, at least 3 (SimCLR: 23 taps at 224×224)."""
    return max(3, int(0.1 * min(height, width)) // 2 * 2 + 1)


def _gaussian_kernel(sigma, radius: int):
    """Normalised 1-D Gaussian weights at offsets −radius..radius, [2·radius + 1]."""
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    weights = jnp.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def _convolve_axis(image, weights, axis: int):
    """Correlates ``image`` with ``weights`` along ``axis``, reflect padding, same size."""
    radius = (weights.shape[0] - 1) // 2
    pad = [(0, 0)] * image.ndim
    pad[axis] = (radius, radius)
    padded = jnp.pad(image, pad, mode="reflect")
    length = image.shape[axis]
    # A sum of shifted copies: cheaper than a convolution for kernels of a few taps.
    return sum(
        weights[i] * jax.lax.slice_in_dim(padded, i, i + length, axis=axis)
        for i in range(weights.shape[0])
    )


def gaussian_blur(image, key, *, prob=0.5, sigma=(0.1, 2.0)):
    """Separable Gaussian blur, σ uniform in ``sigma`` (pixels), with probability ``prob``.

    Kernel size `blur_kernel_size`, reflect padding at the borders. image: [H, W, C].
    """
    sigma_key, apply_key = jax.random.split(key)
    height, width, _ = image.shape
    radius = blur_kernel_size(height, width) // 2
    weights = _gaussian_kernel(
        jax.random.uniform(sigma_key, minval=sigma[0], maxval=sigma[1]), radius
    )

    def blur(x):
        x = _convolve_axis(_convolve_axis(x, weights, axis=0), weights, axis=1)
        return jnp.clip(x, 0.0, 1.0)

    return _apply_with_prob(apply_key, prob, blur, image)


def solarize(image, key, *, prob=0.0, threshold=0.5):
    """Inverts the pixels at or above ``threshold`` (x -> 1 − x) with probability ``prob``."""
    return _apply_with_prob(key, prob, lambda x: jnp.where(x >= threshold, 1.0 - x, x), image)


# --- The composed pipeline -------------------------------------------------------------------


def _for_view(value, view_index: int):
    """A probability given as one number or one value per global view."""
    return value[view_index] if isinstance(value, Sequence) else value


def _augment_view(image, key, config, view_index: int):
    is_local = view_index >= config.num_global
    setting = lambda value: _for_view(value, 0 if is_local else view_index)
    if is_local:
        size, scale = config.local_size, config.local_scale
    else:
        size, scale = config.global_size or image.shape[:2], config.global_scale
    crop_key, flip_key, jitter_key, gray_key, blur_key, solarize_key = jax.random.split(key, 6)
    x = random_resized_crop(
        image, crop_key, size=size, scale=tuple(scale), ratio=tuple(config.ratio)
    )
    x = horizontal_flip(x, flip_key, prob=setting(config.flip_prob))
    x = color_jitter(
        x,
        jitter_key,
        prob=setting(config.jitter_prob),
        brightness=config.brightness,
        contrast=config.contrast,
        saturation=config.saturation,
        hue=config.hue,
    )
    x = random_grayscale(x, gray_key, prob=setting(config.grayscale_prob))
    x = gaussian_blur(x, blur_key, prob=setting(config.blur_prob), sigma=tuple(config.blur_sigma))
    return solarize(x, solarize_key, prob=setting(config.solarize_prob))


def augment_view(image, key, config, view_index: int = 0):
    """One augmented view of one image: crop, flip, jitter, grayscale, blur, solarize.

    Views ``0 .. num_global − 1`` are global crops (``global_size``, ``global_scale``, their
    own per-view probabilities); the next ``num_local`` are local crops (``local_size``,
    ``local_scale``, the first per-view probability).

    Args:
      image: [H, W, C] float in [0, 1], C = 1 or 3.
      key: PRNG key for this image and view.
      config: the ``aug`` config (see `default_config`).
      view_index: which view, in 0 .. num_global + num_local − 1.

    Returns:
      [S, S, C] (global) or [s, s, C] (local), float in [0, 1].
    """
    validate_config(config)
    _check_images(image, rank=3)
    if not 0 <= view_index < config.num_global + config.num_local:
        raise UserError(
            f"view_index {view_index} is out of range: the config has "
            f"{config.num_global} global + {config.num_local} local views."
        )
    return _augment_view(image, key, config, view_index)


def make_views(images, key, config) -> list[jax.Array]:
    """Augmented views of a batch: ``num_global`` global views then ``num_local`` local ones.

    Args:
      images: [B, H, W, C] float32 in [0, 1], C = 1 or 3.
      key: PRNG key; view v of example b uses ``split(split(key, V)[v], B)[b]``, V the number
        of views.
      config: the ``aug`` config (see `default_config`); validated here, at trace time.

    Returns:
      A list of ``num_global`` arrays [B, S, S, C] then ``num_local`` arrays [B, s, s, C].
    """
    validate_config(config)
    _check_images(images, rank=4)
    num_views = config.num_global + config.num_local
    views = []
    for view_index, view_key in enumerate(jax.random.split(key, num_views)):
        example_keys = jax.random.split(view_key, images.shape[0])
        one_view = lambda image, k, v=view_index: _augment_view(image, k, config, v)
        views.append(jax.vmap(one_view)(images, example_keys))
    return views
