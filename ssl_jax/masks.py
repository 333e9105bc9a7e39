"""Masked image modelling's shared pieces: patches, masks and per-patch pixel targets.

Notes 001 §3.3.1 (masked prediction): part of the input's patches are hidden and a network
predicts them from the rest. The pieces here are pure functions of arrays, shared by the
objectives that mask patches (MAE: `random_masking`; BEiT-style: `blockwise_masks`) and by
the ViT (`patchify` is its token order, `keep_patches` its gather of visible tokens).

Conventions: an image [H, W, C] cut into p × p patches has a (H/p) × (W/p) grid; patches and
masks run row-major over that grid (the token order of `ssl_jax.models.vit.ViT`). A mask is
1 (or True) where a patch is hidden.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

# BEiT's blockwise masking (Bao et al. 2022, appendix): rectangles with log-uniform aspect
# ratio in [0.3, 1/0.3] and at least 16 patches of a 14 × 14 grid; small grids need smaller
# rectangles, hence a default of 4.
BLOCK_ASPECT = (0.3, 1 / 0.3)
BLOCK_MIN_PATCHES = 4


def patchify(images, patch_size: int):
    """[B, H, W, C] → [B, N, p·p·C] patches, N = (H/p)(W/p), in the token order of `ViT`.

    Patches run row-major over the grid; each is flattened in (row, column, channel) order,
    the layout of the patch-embedding kernel [p, p, C, D], so
    ``patchify(x, p) @ kernel.reshape(-1, D)`` is the patch embedding before its bias.
    """
    batch, height, width, channels = images.shape
    p = patch_size
    grid = images.reshape(batch, height // p, p, width // p, p, channels)
    return grid.transpose(0, 1, 3, 2, 4, 5).reshape(batch, (height // p) * (width // p), -1)


def unpatchify(patches, patch_size: int, grid_shape: tuple[int, int]):
    """Inverse of `patchify`: [B, gh·gw, p·p·C] → [B, gh·p, gw·p, C]."""
    batch, _, patch_dim = patches.shape
    p, (grid_h, grid_w) = patch_size, grid_shape
    channels = patch_dim // (p * p)
    grid = patches.reshape(batch, grid_h, grid_w, p, p, channels)
    return grid.transpose(0, 1, 3, 2, 4, 5).reshape(batch, grid_h * p, grid_w * p, channels)


def keep_patches(tokens, keep_indices):
    """tokens [B, N, D], keep_indices [B, K] int in [0, N) → [B, K, D] (tokens[b, keep[b]])."""
    return jnp.take_along_axis(tokens, keep_indices[..., None], axis=1)


def visible_count(num_patches: int, mask_ratio: float) -> int:
    """K = round(N · (1 − ratio)), the patches each example keeps (MAE: 49 of 196 at 0.75)."""
    return int(round(num_patches * (1.0 - mask_ratio)))


class RandomMask(NamedTuple):
    """A per-example random mask with K of N patches visible.

    keep_indices: [B, K] int, the visible patches, in the (random) order the encoder sees them.
    mask: [B, N] float, 1 on hidden patches, in patch order.
    restore_order: [B, N] int, the inverse permutation: position i of ``[visible tokens,
      N − K mask tokens]`` gathered at ``restore_order[:, i]`` is patch i's token.
    """

    keep_indices: jax.Array
    mask: jax.Array
    restore_order: jax.Array


def random_masking(key, batch_size: int, num_patches: int, mask_ratio: float) -> RandomMask:
    """MAE's masking (He et al. 2022): per example, sort N uniform noises; the K patches with
    the smallest noise stay visible (K = `visible_count`), the others are hidden. Each example
    hides exactly N − K patches, a uniformly random subset of that size."""
    num_keep = visible_count(num_patches, mask_ratio)
    noise = jax.random.uniform(key, (batch_size, num_patches))
    shuffle = jnp.argsort(noise, axis=1)
    restore_order = jnp.argsort(shuffle, axis=1)
    mask = (restore_order >= num_keep).astype(jnp.float32)
    return RandomMask(shuffle[:, :num_keep], mask, restore_order)


def blockwise_mask(
    key,
    grid_shape: tuple[int, int],
    mask_ratio: float = 0.4,
    min_patches: int = BLOCK_MIN_PATCHES,
    aspect: tuple[float, float] = BLOCK_ASPECT,
    max_tries: int = 100,
):
    """BEiT's blockwise mask of one image: bool [gh·gw], True on hidden patches.

    Until T = round(ratio · N) patches are hidden: draw an area s uniformly between
    ``min_patches`` and the R = T − (hidden so far) still to hide, a log-uniform aspect r in
    ``aspect``, the rectangle h = round(√(s·r)) × w = round(√(s/r)) (h < gh, w < gw) at a
    uniform position, and hide it if it adds between 1 and R new patches. So at most T
    patches are hidden, T unless ``max_tries`` rectangles all fail (rare: small ones fit).
    """
    grid_h, grid_w = grid_shape
    target = int(round(mask_ratio * grid_h * grid_w))
    rows = jnp.arange(grid_h)[:, None]
    cols = jnp.arange(grid_w)[None, :]
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))

    def propose(mask, count, key):
        area_key, aspect_key, top_key, left_key = jax.random.split(key, 4)
        remaining = (target - count).astype(jnp.float32)
        low, high = jnp.minimum(min_patches, remaining), jnp.maximum(min_patches, remaining)
        # float32 and int32 throughout: the same masks with 64-bit mode on (the exactness mode).
        area = jax.random.uniform(area_key, (), jnp.float32, low, high)
        ratio = jnp.exp(jax.random.uniform(aspect_key, (), jnp.float32, *log_aspect))
        h = jnp.maximum(jnp.round(jnp.sqrt(area * ratio)), 1).astype(jnp.int32)
        w = jnp.maximum(jnp.round(jnp.sqrt(area / ratio)), 1).astype(jnp.int32)
        fits = (h < grid_h) & (w < grid_w)
        top = jax.random.randint(top_key, (), 0, jnp.maximum(grid_h - h + 1, 1))
        left = jax.random.randint(left_key, (), 0, jnp.maximum(grid_w - w + 1, 1))
        block = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
        new = block & ~mask
        added = new.sum(dtype=jnp.int32)
        accept = fits & (added > 0) & (added <= target - count)
        return mask | (new & accept), count + jnp.where(accept, added, 0)

    def body(carry):
        mask, count, tries, key = carry
        key, draw_key = jax.random.split(key)
        mask, count = propose(mask, count, draw_key)
        return mask, count, tries + 1, key

    def cond(carry):
        _, count, tries, _ = carry
        return (count < target) & (tries < max_tries)

    start = (jnp.zeros(grid_shape, bool), jnp.int32(0), jnp.int32(0), key)
    mask, _, _, _ = jax.lax.while_loop(cond, body, start)
    return mask.reshape(-1)


def blockwise_masks(key, batch_size: int, grid_shape: tuple[int, int], **kwargs):
    """`blockwise_mask` for each of ``batch_size`` images: bool [B, gh·gw]."""
    keys = jax.random.split(key, batch_size)
    return jax.vmap(lambda k: blockwise_mask(k, grid_shape, **kwargs))(keys)


def normalized_patch_targets(patches, eps: float = 1e-6):
    """MAE's ``norm_pix_loss`` targets: each patch's pixels standardised by that patch's own
    mean and (population) variance, (x − μ_patch) / √(σ²_patch + ε). patches: [..., P]."""
    mean = patches.mean(axis=-1, keepdims=True)
    variance = patches.var(axis=-1, keepdims=True)
    return (patches - mean) / jnp.sqrt(variance + eps)


def masked_patch_mse(predictions, targets, mask):
    """MAE's loss: the squared error averaged over each patch's pixels, then over the hidden
    patches only, (1 / Σ_bi m_bi) Σ_bi m_bi · (1/P) Σ_j (ŷ_bij − y_bij)².

    predictions, targets: [B, N, P]; mask: [B, N], 1 on hidden patches. Per example and
    patch, so it needs nothing from other devices beyond the global sums.
    """
    per_patch = jnp.mean(jnp.square(predictions - targets), axis=-1)
    return jnp.sum(per_patch * mask) / jnp.sum(mask)


# --- Region masks of inpainting (the context encoder, Pathak et al. 2016) -------------------
# Pixel masks [H, W] rather than patch masks: the hole is a square of pixels, 1 inside it.


def central_region_mask(image_shape: tuple[int, int], size: int):
    """The context encoder's central hole: float32 [H, W], 1 on the ``size`` × ``size`` square
    at the centre (rows top … top + size − 1 with top = ⌊(H − size)/2⌋, columns likewise), 0
    elsewhere. Pathak et al. (2016) hide the centre 64 × 64 of 128 × 128 images: half the side,
    a quarter of the pixels."""
    height, width = image_shape
    if not 1 <= size <= min(height, width):
        raise ValueError(f"a central hole of side {size} does not fit a {height}×{width} image")
    top, left = (height - size) // 2, (width - size) // 2
    rows = (jnp.arange(height) >= top) & (jnp.arange(height) < top + size)
    cols = (jnp.arange(width) >= left) & (jnp.arange(width) < left + size)
    return (rows[:, None] & cols[None, :]).astype(jnp.float32)


def random_region_masks(
    key, batch_size: int, image_shape: tuple[int, int], sizes: tuple[int, int], count: int = 1
):
    """Random square holes: float32 [B, H, W], 1 on the union of ``count`` squares per image.

    Each square independently: a side s uniform over the integers ``sizes[0]`` … ``sizes[1]``,
    then its top-left corner uniform over the positions that keep it inside the image (top in
    0 … H − s, left in 0 … W − s). Squares may overlap (Pathak et al.'s "random blocks").
    """
    height, width = image_shape
    low, high = sizes
    if not 1 <= low <= high <= min(height, width):
        raise ValueError(f"hole sides {sizes} do not fit a {height}×{width} image")
    side_key, top_key, left_key = jax.random.split(key, 3)
    shape = (batch_size, count)
    side = jax.random.randint(side_key, shape, low, high + 1)
    top = jax.random.randint(top_key, shape, 0, height - side + 1)
    left = jax.random.randint(left_key, shape, 0, width - side + 1)
    rows = jnp.arange(height)[:, None]
    cols = jnp.arange(width)[None, :]

    def square(s, t, u):  # side, top, left → [H, W] bool
        return (rows >= t) & (rows < t + s) & (cols >= u) & (cols < u + s)

    squares = jax.vmap(jax.vmap(square))(side, top, left)  # [B, count, H, W]
    return squares.any(axis=1).astype(jnp.float32)
