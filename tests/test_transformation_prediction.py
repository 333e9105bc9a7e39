"""Transformation prediction (notes 001 §3.3.2): the labels of rotation, jigsaw and relative
position are the transformations that were applied; the jigsaw's permutation subset is far
apart in Hamming distance; colour dropping keeps one channel and flattens the others; each
objective runs alike on 1 and 8 devices and learns on real digits."""

import itertools

import jax
import ml_collections
import numpy as np
import pytest

from ssl_jax import pretext
from ssl_jax.data.spec import ArraySpec
from ssl_jax.errors import UserError
from ssl_jax.objectives import make_objective
from tests.configs import tiny_config
from tests.learning import learning_config, pretrain
from tests.objective_steps import Run

KEY = jax.random.key(0)
OBJECTIVES = ("rotation", "jigsaw", "relative_position")


def position_coded_images(batch, height, width, channels=1):
    """Images whose every pixel value is unique, so a tile tells where it was cut from."""
    values = np.arange(batch * height * width * channels, dtype=np.float32)
    return values.reshape(batch, height, width, channels)


# --------------------------------------------------------------------------------------------
# Rotation


def test_rotating_back_by_the_label_recovers_the_image():
    images = np.random.default_rng(0).uniform(size=(5, 6, 6, 2)).astype(np.float32)
    rotated, labels = jax.device_get(pretext.every_rotation(images))
    assert rotated.shape == (20, 6, 6, 2)
    assert sorted(np.bincount(labels)) == [5, 5, 5, 5]
    for i, (image, k) in enumerate(zip(rotated, labels, strict=True)):
        np.testing.assert_array_equal(np.rot90(image, -k, axes=(0, 1)), images[i % 5])
        np.testing.assert_array_equal(image, np.rot90(images[i % 5], k, axes=(0, 1)))
    # One random turn each: still the label's turn, and all four drawn.
    many = np.repeat(images, 40, axis=0)
    rotated, labels = jax.device_get(pretext.random_rotations(many, KEY))
    assert set(labels.tolist()) == {0, 1, 2, 3}
    for image, original, k in zip(rotated, many, labels, strict=True):
        np.testing.assert_array_equal(np.rot90(image, -k, axes=(0, 1)), original)
    # Non-square images are cut to their central square first.
    wide = np.zeros((1, 4, 7, 1), np.float32)
    assert pretext.square_centre_crop(wide).shape == (1, 4, 4, 1)


# --------------------------------------------------------------------------------------------
# Tile geometry and the jigsaw


def test_tile_layouts_of_mnist_cifar_and_tiny_digits():
    layout = lambda shape, g=0.15, j=0.12: pretext.tile_layout(shape, g, j, objective="jigsaw")
    assert layout((28, 28, 1)) == pretext.TileLayout(cell=9, tile=7, gap=1, jitter=1)
    assert layout((32, 32, 3), 0.25) == pretext.TileLayout(cell=10, tile=7, gap=2, jitter=1)
    assert layout((8, 8, 1)) == pretext.TileLayout(cell=2, tile=2, gap=0, jitter=0)
    with pytest.raises(UserError, match="at least 3×3; got"):
        layout((2, 8, 1))
    with pytest.raises(UserError, match="sum below 1"):
        layout((28, 28, 1), 0.6, 0.4)


def test_tiles_stay_in_their_cells_at_least_the_gap_apart():
    layout = pretext.tile_layout((31, 29, 1), 0.25, 0.2, objective="jigsaw")
    assert layout == pretext.TileLayout(cell=9, tile=6, gap=2, jitter=1)
    corners = np.asarray(pretext.sample_tile_corners(KEY, layout, 2000, 31, 29))
    grid = corners.reshape(2000, 3, 3, 2)
    # Horizontal and vertical neighbours: never closer than the gap, never farther than
    # gap + 2·jitter, and every spacing in between drawn.
    across = grid[:, :, 1:, 1] - grid[:, :, :-1, 1] - layout.tile
    down = grid[:, 1:, :, 0] - grid[:, :-1, :, 0] - layout.tile
    for spacing in (across, down):
        assert set(np.unique(spacing).tolist()) == {2, 3, 4}
    # The 27-pixel grid lies anywhere in the 31×29 image: tile 0 starts gap // 2 = 1 pixel
    # into its cell, plus 0-4 (rows) or 0-2 (columns) of slack, plus 0-1 of jitter.
    first = corners[:, 0]
    assert first.min(axis=0).tolist() == [1, 1] and first.max(axis=0).tolist() == [6, 4]
    assert corners[..., 0].max() + layout.tile <= 31 and corners[..., 1].max() + layout.tile <= 29


def test_the_inverse_permutation_reassembles_the_image():
    images = position_coded_images(16, 28, 28, 3)
    layout = pretext.tile_layout(images.shape[1:], 0.15, 0.12, objective="jigsaw")
    permutations = pretext.jigsaw_permutations(30)
    puzzles, labels, corners = jax.device_get(
        pretext.jigsaw_puzzles(images, KEY, layout, permutations)
    )
    assert puzzles.shape == (16, 9, 7, 7, 3)
    t = layout.tile
    for image, puzzle, label, where in zip(images, puzzles, labels, corners, strict=True):
        order = permutations[label]
        tiles = puzzle[np.argsort(order)]  # un-shuffled: tile k back in cell k
        canvas = np.full_like(image, -1.0)
        for tile, (y, x) in zip(tiles, where, strict=True):
            canvas[y : y + t, x : x + t] = tile
        pasted = canvas >= 0
        np.testing.assert_array_equal(canvas[pasted], image[pasted])
        assert pasted.sum() == 9 * t * t * 3  # nine disjoint tiles
        # Position k of the puzzle shows tile order[k], read off its unique pixel values.
        for k in range(9):
            y, x = where[order[k]]
            np.testing.assert_array_equal(puzzle[k], image[y : y + t, x : x + t])


def brute_force_minimum_distance(permutations) -> int:
    return min(
        sum(a != b for a, b in zip(p, q, strict=True))
        for p, q in itertools.combinations(permutations.tolist(), 2)
    )


def test_permutation_subset_is_farther_apart_than_random_subsets():
    chosen = pretext.jigsaw_permutations(30, seed=0)
    assert chosen.shape == (30, 9)
    assert all(sorted(p) == list(range(9)) for p in chosen.tolist())
    assert len({tuple(p) for p in chosen.tolist()}) == 30
    greedy = brute_force_minimum_distance(chosen)
    assert greedy == pretext.minimum_hamming_distance(chosen) == 7  # of at most 9
    rng = np.random.default_rng(0)
    random_subsets = [
        brute_force_minimum_distance(np.array([rng.permutation(9) for _ in range(30)]))
        for _ in range(20)
    ]
    assert max(random_subsets) < greedy, random_subsets
    # Deterministic from the seed (recomputed, not the cached copy); another seed, another set.
    again = pretext._greedy_permutations.__wrapped__(30, 0, 9)
    np.testing.assert_array_equal(again, chosen)
    assert not np.array_equal(pretext.jigsaw_permutations(30, seed=1), chosen)
    with pytest.raises(UserError, match="between 2 and 9! = 362880"):
        pretext.jigsaw_permutations(1)


# --------------------------------------------------------------------------------------------
# Relative position and colour dropping


def test_the_label_is_the_neighbours_offset_from_the_centre():
    images = position_coded_images(400, 28, 28)
    layout = pretext.tile_layout(images.shape[1:], 0.25, 0.12, objective="relative_position")
    centres, neighbours, labels, _ = jax.device_get(pretext.patch_pairs(images, KEY, layout))
    assert centres.shape == neighbours.shape == (400, 6, 6, 1)
    assert set(labels.tolist()) == set(range(8))
    # Where each patch came from, read off its top-left pixel's value alone.
    rows = lambda patches: (patches[:, 0, 0, 0] % (28 * 28)) // 28
    cols = lambda patches: patches[:, 0, 0, 0] % 28
    dy, dx = rows(neighbours) - rows(centres), cols(neighbours) - cols(centres)
    offsets = np.array(pretext.NEIGHBOUR_OFFSETS)[labels]
    for step, offset in ((dy, offsets[:, 0]), (dx, offsets[:, 1])):
        # One cell (± jitter) in the label's direction, or no more than the jitter across it.
        moved = offset != 0
        np.testing.assert_array_equal(np.sign(step[moved]), offset[moved])
        assert np.all(np.abs(np.abs(step[moved]) - layout.cell) <= layout.jitter)
        assert np.all(np.abs(step[~moved]) <= layout.jitter)


def test_colour_dropping_keeps_one_channel_and_replaces_the_others():
    rng = np.random.default_rng(0)
    n = 6000
    # Patches with spatial structure in every channel and different channel means.
    patches = (rng.uniform(size=(n, 6, 6, 3)) * [0.5, 0.8, 1.0] + [0, 0.1, 0]).astype(np.float32)
    dropped, kept = jax.device_get(pretext.drop_colour_channels(patches, KEY, "noise"))
    counts = np.bincount(kept, minlength=3)
    sigma = np.sqrt(n * (1 / 3) * (2 / 3))
    assert np.all(np.abs(counts - n / 3) < 4 * sigma), counts
    rows = np.arange(n)
    np.testing.assert_array_equal(dropped[rows, :, :, kept], patches[rows, :, :, kept])
    kept_variance = patches[rows, :, :, kept].var(axis=(1, 2))
    for channel in range(3):
        gone = kept != channel
        out, original = dropped[gone, :, :, channel], patches[gone, :, :, channel]
        # The patch's mean colour stays (up to the mean of 36 noise draws) ...
        shift = out.mean(axis=(1, 2)) - original.mean(axis=(1, 2))
        assert np.abs(shift).max() < 3e-3 and abs(shift.mean()) < 1e-4
        # ... the noise's variance is (1/100 of the kept channel's std)², on average ...
        ratio = out.var(axis=(1, 2), ddof=1) / (1e-4 * kept_variance[gone])
        np.testing.assert_allclose(ratio.mean(), 1.0, atol=0.03)
        # ... and no spatial trace of the original channel is left.
        centred = lambda x: (x - x.mean(axis=(1, 2), keepdims=True)).reshape(len(x), -1)
        a, b = centred(out), centred(original)
        correlation = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
        assert abs(correlation.mean()) < 0.015
    flat, _ = jax.device_get(pretext.drop_colour_channels(patches[:50], KEY, "mean"))
    assert np.all((np.ptp(flat, axis=(1, 2)) == 0).sum(-1) == 2)  # two flat channels a patch
    same, none = pretext.drop_colour_channels(patches[:5], KEY, "none")
    np.testing.assert_array_equal(same, patches[:5])
    assert np.all(np.asarray(none) == -1)


# --------------------------------------------------------------------------------------------
# The objectives


@pytest.mark.parametrize("name", OBJECTIVES)
def test_one_step_on_eight_devices_equals_one_device(name):
    """The tiny config (8×8 digits: 2×2 tiles and patches) on 1 and on 8 devices: the same
    loss, pretext accuracy and gradient norm at the first step (float32, summed in another
    order over 8 shards)."""
    one = Run(name, num_devices=1).steps(1)[-1]
    eight = Run(name, num_devices=8).steps(1)[-1]
    for metric in ("loss", "pretext_accuracy", "grad_norm"):
        np.testing.assert_allclose(eight[metric], one[metric], rtol=1e-5, err_msg=metric)


def test_too_small_images_and_bad_settings_are_one_line_errors():
    spec = {"images": ArraySpec((8, 8, 3), "float32", "images")}
    config = tiny_config("relative_position", colour_dropping="blur")
    with pytest.raises(UserError, match="colour_dropping must be one of"):
        make_objective(config, spec)
    config = tiny_config("jigsaw", num_permutations=1)
    with pytest.raises(UserError, match="num_permutations must be between 2"):
        make_objective(config, spec)
    config = tiny_config("jigsaw")
    config.model = ml_collections.ConfigDict(dict(name="mlp", hidden_dims=(16,)))
    with pytest.raises(UserError, match="trains the encoder on tiles of 2×2×3 and reads it out"):
        make_objective(config, spec)


# Measured at 100 steps, batch 128 (held-out kNN / linear, trained vs random init):
# rotation on 8×8 digits, seed 0: 0.903 / 0.930 vs 0.853 / 0.853; seed 1: 0.920 / 0.920 vs
# 0.907 / 0.900. Jigsaw and relative position on 8×8 digits learn their task (56 % of 100
# permutations, 35 % of 8 positions at 300 steps) but not whole-digit features: 2×2 tiles
# hold too little (kNN 0.82-0.89 vs 0.85-0.91). On the 28×28 MNIST subset (7×7 tiles, 6×6
# patches), kNN: jigsaw seed 0 0.698 vs 0.605, seed 1 0.712 vs 0.652; relative position 0.660
# vs 0.605 and 0.689 vs 0.652; their linear probes are within ±0.02 of random init.
LEARNING = {
    "rotation": (dict(), {"knn": 0.01, "linear": 0.01}),
    "jigsaw": (dict(dataset="mnist_subset"), {"knn": 0.03}),
    "relative_position": (dict(dataset="mnist_subset"), {"knn": 0.02}),
}


@pytest.mark.parametrize("name", OBJECTIVES)
def test_objective_learns_on_digits(name, tmp_path):
    settings, margins = LEARNING[name]
    scores = pretrain(learning_config(name, num_steps=100, **settings), tmp_path)
    for protocol, margin in margins.items():
        trained, random_init = scores[protocol]
        assert trained > random_init + margin, (protocol, scores)
