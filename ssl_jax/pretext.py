"""Transformations whose parameters a network learns to predict: the shared pieces of the
rotation, jigsaw and relative-position objectives.

Notes 001 §3.3.2 (transformation prediction), 002 §2.5-2.6. Each pretext task turns an
unlabelled batch into a labelled one, and the labels come from the transformation itself:

- **rotation** (Gidaris et al. 2018): the image turned by k·90°, k ∈ {0, 1, 2, 3} the label
  (`every_rotation`, `random_rotations`);
- **jigsaw** (Noroozi & Favaro 2016): a 3×3 grid of tiles, shuffled by one permutation of a
  fixed subset of the 9! chosen for large Hamming distances (`jigsaw_permutations`), its index
  the label (`jigsaw_puzzles`);
- **relative position** (Doersch et al. 2015): the centre patch of a 3×3 grid and one of its 8
  neighbours, the neighbour's position the label (`patch_pairs`), with colour dropping against
  chromatic aberration (`drop_colour_channels`).

Tiles and patches share one geometry (`TileLayout`): a square grid of 3×3 cells as large as
the image allows, each cell holding one tile no larger than the cell. The tile starts
``gap // 2`` pixels into its cell and is shifted by a further random 0 … ``jitter`` pixels on
each axis, so neighbouring tiles are always at least ``gap`` pixels apart (the network cannot
match edges that touch, the shortcut both papers guard against) and, with jitter, not at one
fixed spacing (it cannot read the position off a grid alignment either). Where the image is
larger than the grid, the grid itself is placed at a random offset.

Everything here is a pure function of arrays and a PRNG key, traceable under `jax.jit`.
"""

import dataclasses
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssl_jax import augment
from ssl_jax.errors import UserError
from ssl_jax.precision import at_least_float32

NUM_ROTATIONS = 4
GRID = 3  # tiles per side: 3×3 tiles for the jigsaw, the centre and 8 neighbours for pairs
CENTRE = (GRID * GRID) // 2  # raster index of the centre cell
# (dy, dx) of the 8 neighbours of the centre cell in raster order: label k ↦ NEIGHBOUR_OFFSETS[k].
NEIGHBOUR_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
# Their raster indices in the 3×3 grid: [0, 1, 2, 3, 5, 6, 7, 8].
NEIGHBOUR_CELLS = tuple((1 + dy) * GRID + (1 + dx) for dy, dx in NEIGHBOUR_OFFSETS)
COLOUR_DROPPING = ("noise", "mean", "none")


# ---------------------------------------------------------------------------------------------
# Rotations


def square_centre_crop(images):
    """The central min(H, W) square of each image: [B, H, W, C] → [B, S, S, C]. A quarter turn
    of a non-square image changes its shape, so rotations work on squares."""
    height, width = images.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return images[:, top : top + side, left : left + side]


def rotate(images, quarter_turns: int):
    """Every image turned counter-clockwise by ``quarter_turns``·90° (`numpy.rot90` over the
    height and width axes). images: [B, S, S, C]."""
    return jnp.rot90(images, quarter_turns, axes=(1, 2))


def every_rotation(images):
    """Each image in all four rotations, Gidaris et al.'s batch: ``(rotated [4B, S, S, C],
    labels [4B])``, rotation-major (rows k·B … (k+1)·B − 1 are turned by k·90°)."""
    rotated = jnp.concatenate([rotate(images, k) for k in range(NUM_ROTATIONS)])
    labels = jnp.repeat(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32), images.shape[0])
    return rotated, labels


def random_rotations(images, key):
    """Each image turned by its own uniformly drawn k·90°: ``(rotated [B, S, S, C], labels
    [B])``."""
    labels = jax.random.randint(key, (images.shape[0],), 0, NUM_ROTATIONS, dtype=jnp.int32)
    every = jnp.stack([rotate(images, k) for k in range(NUM_ROTATIONS)])  # [4, B, S, S, C]
    return every[labels, jnp.arange(images.shape[0])], labels


# ---------------------------------------------------------------------------------------------
# Tile geometry


@dataclasses.dataclass(frozen=True)
class TileLayout:
    """Sizes in pixels of a ``grid``×``grid`` layout of tiles: each cell is ``cell`` pixels
    square; its tile, ``tile`` pixels square, starts ``gap // 2`` pixels into it plus a random
    0 … ``jitter``; so ``cell = tile + gap + jitter`` and neighbouring tiles are ≥ ``gap`` apart.
    """

    cell: int
    tile: int
    gap: int
    jitter: int
    grid: int = GRID


def _layout_of_cell(cell: int, gap_fraction: float, jitter_fraction: float, grid: int):
    gap, jitter = math.floor(gap_fraction * cell), math.floor(jitter_fraction * cell)
    return TileLayout(cell=cell, tile=cell - gap - jitter, gap=gap, jitter=jitter, grid=grid)


def tile_layout(
    image_shape, gap_fraction: float, jitter_fraction: float, *, objective: str, grid: int = GRID
) -> TileLayout:
    """The layout for images of ``image_shape`` (H, W, C): cells of ⌊min(H, W)/grid⌋ pixels,
    a gap of ⌊gap_fraction·cell⌋ and a jitter of ⌊jitter_fraction·cell⌋ pixels, the rest the
    tile (at least 1 pixel whenever the fractions sum below 1). Images under grid×grid pixels
    are refused with a one-line `UserError`.

    For example 28×28 MNIST at fractions 0.15 and 0.12 gives 9-pixel cells, 7-pixel tiles;
    8×8 digits give 2-pixel cells whose tiles are the whole cell (no room for a gap).
    """
    fractions = (gap_fraction, jitter_fraction)
    if not (all(0 <= f < 1 for f in fractions) and sum(fractions) < 1):
        raise UserError(
            f"{objective} needs objective.gap_fraction and objective.jitter_fraction in [0, 1) "
            f"with a sum below 1 (the rest of each cell is the tile), got {gap_fraction} and "
            f"{jitter_fraction}."
        )
    cell = min(image_shape[:2]) // grid
    if cell < 1:
        raise UserError(
            f"{objective} cuts images into {grid}×{grid} cells and needs images of at least "
            f"{grid}×{grid}; got {tuple(image_shape[:2])}."
        )
    # Both shares are rounded down, so the tile keeps at least one pixel of every cell.
    return _layout_of_cell(cell, gap_fraction, jitter_fraction, grid)


def sample_tile_corners(key, layout: TileLayout, batch: int, height: int, width: int):
    """Top-left corners (y, x) of every tile of every image, [B, grid², 2] int32, raster order.

    The grid (grid·cell pixels square) is placed at a uniform offset inside the image; each tile
    sits ``gap // 2`` pixels into its cell plus its own uniform 0 … ``jitter`` on each axis.
    """
    origin_key, jitter_key = jax.random.split(key)
    extent = layout.grid * layout.cell
    slack = jnp.array([height - extent, width - extent], jnp.int32)
    origin = jax.random.randint(origin_key, (batch, 1, 2), 0, slack + 1, dtype=jnp.int32)
    rows, cols = np.divmod(np.arange(layout.grid * layout.grid), layout.grid)
    cells = jnp.asarray(np.stack([rows, cols], -1) * layout.cell, jnp.int32)  # [grid², 2]
    n = layout.grid * layout.grid
    shift = jax.random.randint(jitter_key, (batch, n, 2), 0, layout.jitter + 1, dtype=jnp.int32)
    return origin + cells + layout.gap // 2 + shift


def cut_tiles(images, corners, size: int):
    """The ``size``×``size`` tiles of each image at ``corners``.

    Args:
      images: [B, H, W, C].
      corners: [B, n, 2] int top-left (y, x) of each tile, inside the image.

    Returns:
      [B, n, size, size, C].
    """
    channels = images.shape[-1]

    def one_tile(image, corner):
        start = (corner[0], corner[1], jnp.zeros((), corner.dtype))  # one index dtype, also in x64
        return jax.lax.dynamic_slice(image, start, (size, size, channels))

    return jax.vmap(jax.vmap(one_tile, in_axes=(None, 0)))(images, corners)


# ---------------------------------------------------------------------------------------------
# Jigsaw


@functools.lru_cache(maxsize=2)
def _every_permutation(num_tiles: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(num_tiles))), np.int8)


def hamming_distances(permutations, permutation) -> np.ndarray:
    """The number of positions where each row of ``permutations`` [P, n] differs from
    ``permutation`` [n]: [P] int."""
    return np.count_nonzero(np.asarray(permutations) != np.asarray(permutation), axis=-1)


def minimum_hamming_distance(permutations) -> int:
    """The smallest Hamming distance between two distinct rows of ``permutations`` [P, n]."""
    permutations = np.asarray(permutations)
    pairwise = (permutations[:, None, :] != permutations[None, :, :]).sum(-1)
    return int(pairwise[np.triu_indices(len(permutations), k=1)].min())


@functools.lru_cache(maxsize=16)
def _greedy_permutations(num_permutations: int, seed: int, num_tiles: int) -> np.ndarray:
    candidates = _every_permutation(num_tiles)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(candidates)))]
    # Each candidate's distance to its nearest chosen permutation (0 for the chosen ones).
    nearest = hamming_distances(candidates, candidates[chosen[0]])
    for _ in range(num_permutations - 1):
        ties = np.flatnonzero(nearest == nearest.max())
        pick = int(ties[rng.integers(len(ties))])
        chosen.append(pick)
        nearest = np.minimum(nearest, hamming_distances(candidates, candidates[pick]))
    subset = candidates[chosen].astype(np.int32)
    subset.flags.writeable = False
    return subset


def jigsaw_permutations(num_permutations: int, seed: int = 0, num_tiles: int = GRID * GRID):
    """A subset of ``num_permutations`` of the ``num_tiles``! permutations chosen greedily for
    the largest minimum Hamming distance: a random first one, then each time the permutation
    farthest (in Hamming distance) from its nearest already chosen one, ties drawn at random.
    The same ``seed`` gives the same subset, so a checkpoint's classes keep their meaning.

    Far-apart permutations make the classes hard to confuse, which Noroozi & Favaro found made
    the task, and the features, better than a random subset of the same size. (They maximise
    the average distance; the minimum is the stricter criterion.) Returns [P, n] int32,
    read-only; about 1 s for 100 of 9! on one core, cached.
    """
    total = math.factorial(num_tiles)
    if not 2 <= num_permutations <= total:
        raise UserError(
            f"objective.num_permutations must be between 2 and {num_tiles}! = {total}, got "
            f"{num_permutations}; Noroozi & Favaro use 100 (30 to 1000 in their ablation)."
        )
    return _greedy_permutations(int(num_permutations), int(seed), int(num_tiles))


def shuffle_tiles(tiles, permutations, labels):
    """Position k of puzzle b shows tile ``permutations[labels[b], k]``.

    Args:
      tiles: [B, n, h, w, C] in raster order.
      permutations: [P, n] int.
      labels: [B] int indices into ``permutations``.

    Returns:
      [B, n, h, w, C]. ``puzzles[:, argsort(permutations[labels[b]])]`` restores puzzle b.
    """
    order = jnp.asarray(permutations)[labels]  # [B, n]
    return jnp.take_along_axis(tiles, order[:, :, None, None, None], axis=1)


def jigsaw_puzzles(images, key, layout: TileLayout, permutations):
    """Shuffled tiles of each image and the index of the permutation that shuffled them.

    Returns ``(puzzles [B, grid², tile, tile, C], labels [B] int32, corners [B, grid², 2])``,
    ``corners`` the unshuffled tiles' positions in the image.
    """
    corner_key, label_key = jax.random.split(key)
    batch, height, width = images.shape[:3]
    corners = sample_tile_corners(corner_key, layout, batch, height, width)
    tiles = cut_tiles(images, corners, layout.tile)
    labels = jax.random.randint(label_key, (batch,), 0, len(permutations), dtype=jnp.int32)
    return shuffle_tiles(tiles, permutations, labels), labels, corners


# ---------------------------------------------------------------------------------------------
# Relative position


def patch_pairs(images, key, layout: TileLayout):
    """The centre tile of each image's 3×3 layout and one of its 8 neighbours, drawn uniformly;
    the label is the neighbour's index in `NEIGHBOUR_OFFSETS`.

    Returns ``(centres, neighbours, labels, corners)``: two [B, tile, tile, C] arrays, [B]
    int32 labels, and [B, 2, 2] corners (y, x) of the centre and the neighbour in the image.
    """
    corner_key, label_key = jax.random.split(key)
    batch, height, width = images.shape[:3]
    corners = sample_tile_corners(corner_key, layout, batch, height, width)  # [B, 9, 2]
    labels = jax.random.randint(label_key, (batch,), 0, len(NEIGHBOUR_CELLS), dtype=jnp.int32)
    cells = jnp.stack([jnp.full_like(labels, CENTRE), jnp.asarray(NEIGHBOUR_CELLS)[labels]], -1)
    pair_corners = jnp.take_along_axis(corners, cells[:, :, None], axis=1)  # [B, 2, 2]
    patches = cut_tiles(images, pair_corners, layout.tile)
    return patches[:, 0], patches[:, 1], labels, pair_corners


def drop_colour_channels(patches, key, mode: str = "noise", noise_scale: float = 0.01):
    """Keeps one colour channel of each patch, drawn uniformly, and replaces the other two.

    Doersch et al. (2015) found that a network locates a patch relative to the lens from
    chromatic aberration (one colour channel shifted against the others towards the image's
    edges), a shortcut that teaches nothing about objects; with one channel kept the shift is
    gone. ``mode``:

    - ``"noise"`` (their choice): each dropped channel becomes its own mean over the patch plus
      Gaussian noise with a standard deviation of ``noise_scale`` (1/100, theirs) times the kept
      channel's. No spatial structure survives in it, while the patch's average colour, and
      so the range of values the first layer sees on whole colour images at read-out, does;
      the faint noise keeps the channel from being exactly flat.
    - ``"mean"``: the dropped channels are their patch means alone.
    - ``"none"``: the patches unchanged.

    Args:
      patches: [N, h, w, 3].
      key: PRNG key.

    Returns:
      ``(patches [N, h, w, 3], kept [N] int32)``; ``kept`` is −1 under ``"none"``.
    """
    if mode not in COLOUR_DROPPING:
        raise UserError(
            f"objective.colour_dropping must be one of {COLOUR_DROPPING}, got {mode!r}."
        )
    if mode == "none":
        return patches, jnp.full((patches.shape[0],), -1, jnp.int32)
    keep_key, noise_key = jax.random.split(key)
    kept = jax.random.randint(keep_key, (patches.shape[0],), 0, 3, dtype=jnp.int32)
    is_kept = jax.nn.one_hot(kept, 3, dtype=bool)[:, None, None, :]  # [N, 1, 1, 3]
    means = patches.mean(axis=(1, 2), keepdims=True)  # [N, 1, 1, 3]
    replacement = jnp.broadcast_to(means, patches.shape)
    if mode == "noise":
        kept_std = jnp.take_along_axis(
            patches.std(axis=(1, 2), keepdims=True), kept[:, None, None, None], axis=-1
        )
        noise = jax.random.normal(noise_key, patches.shape, patches.dtype)
        replacement = replacement + noise_scale * kept_std * noise
    return jnp.where(is_kept, patches, replacement), kept


# ---------------------------------------------------------------------------------------------
# What the three objectives share


def augmented_view(images, key, aug_config):
    """One augmented view of each image (`ssl_jax.augment.augment_view`, view 0): the random
    crops and flips an objective may add before its own transformation."""
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(lambda image, k: augment.augment_view(image, k, aug_config))(images, keys)


def classification_loss(logits, labels):
    """Cross-entropy of the pretext labels, (1/B) Σ_b −log softmax(ℓ_b)_{y_b}, in float32, and
    the accuracy of the arg-max: ``(loss, accuracy)``."""
    logits = at_least_float32(logits)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, jnp.mean(jnp.argmax(logits, -1) == labels)


def check_encoder_reads_parts_and_images(
    encoder, part_shape, image_shape, *, objective: str, part: str, model_name: str
) -> None:
    """A one-line `UserError` unless ``encoder``, initialised on parts of ``part_shape`` (tiles,
    patches, square crops; (h, w, C)), also runs on whole images of ``image_shape`` with the
    same parameters, as the read-out needs. Convolutional encoders and ViTs (their position
    embeddings are resized) do; an MLP's first layer is sized by its input and does not.
    Traced abstractly: nothing is compiled."""

    def init_on_parts_apply_to_images():
        parts = jnp.zeros((2, *part_shape))
        variables = encoder.init(jax.random.key(0), parts, train=False)
        return encoder.apply(variables, jnp.zeros((2, *image_shape)), train=False)

    try:
        jax.eval_shape(init_on_parts_apply_to_images)
    except Exception as err:  # noqa: BLE001 - any failure means it cannot read both
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        size = lambda shape: "×".join(map(str, shape))
        raise UserError(
            f"{objective} trains the encoder on {part} of {size(part_shape)} and reads it out "
            f"on whole {size(image_shape)} images, which model {model_name!r} cannot do with "
            f"one set of parameters ({reason}); use a convolutional model (small_cnn, resnet18) "
            "or a ViT."
        ) from None
