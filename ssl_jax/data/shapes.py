"""A dSprites-like image dataset with known generative factors, rendered procedurally.

Five independent factors (notes 001 §2.1.3 and §4.1: a generator x = g(z) whose latents z we
know, so a representation can be checked against them) set one white shape on a black square
image, [H, W, 1] uint8 in {0, 255}:

| factor | default size | values |
|---|---|---|
| ``shape`` | 3 | square, ellipse (2:1), heart |
| ``scale`` | 6 | linspace(0.5, 1, n) times the largest half-size, ``0.16 * image_size`` |
| ``orientation`` | 40 | 2πk / n, k = 0..n-1 (anticlockwise on screen) |
| ``pos_x``, ``pos_y`` | 32, 32 | centres one whole-pixel step apart, grid centred in the image |

Rendering is a rasterisation of each shape's implicit inequality on the pixel grid: a pixel
(c, r) is on when its offset from the centre, rotated by -θ and divided by the half-size s,
lands inside the unit shape, |u|, |v| ≤ 1 (square), u² + 4v² ≤ 1 (ellipse), or
(x² + y² − 1)³ − x²y³ ≤ 0 with x = u, y = 0.118 − v (heart, upright at θ = 0). Positions
move in whole pixels, so one step of ``pos_x`` translates the image by exactly ``position_step``
pixels and nothing else changes. Rendering is deterministic.

As in dSprites, some factor combinations give the same image: a square is unchanged by a
quarter turn and an ellipse by a half turn, so with 40 orientations the square's orientations
k and k + 10 coincide. No encoder can tell those apart; an orientation count that is not a
multiple of 2 (e.g. 5) avoids the coincidences.
"""

import math

import numpy as np

from ssl_jax.errors import UserError

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
SHAPE_NAMES = ("square", "ellipse", "heart")
# Largest distance from a shape's centre to its outline, in half-sizes: the square's corner
# (the heart reaches 1.34, the ellipse 1). The position grid keeps this disc inside the image.
_MAX_RADIUS = math.sqrt(2.0)
# The heart's implicit curve spans y in [-1, 1.236]; shifting by the midpoint centres it.
_HEART_Y_SHIFT = 0.118
_RENDER_CHUNK = 1024


def _inside_unit_shape(shape: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the point (u, v) in shape coordinates is inside each unit shape: bool like u.

    shape: [N, 1, 1] int; u, v: [N, h, w] (v points down the screen).
    """
    square = np.maximum(np.abs(u), np.abs(v)) <= 1.0
    ellipse = u * u + 4.0 * v * v <= 1.0
    y = _HEART_Y_SHIFT - v
    r = u * u + y * y - 1.0
    heart = r * r * r - u * u * y * y * y <= 0.0
    return np.where(shape == 0, square, np.where(shape == 1, ellipse, heart))


class Shapes:
    """Procedural dSprites-like dataset: factors → 1-channel binary images.

    ``Shapes()`` is the full 64×64 dataset with factor sizes (3, 6, 40, 32, 32), 737,280
    distinct factor combinations; ``Shapes(image_size=16, factor_sizes=(3, 3, 5, 8, 8))`` is a
    small variant for tests. Factors are integer indices, one column per ``FACTOR_NAMES``.
    """

    factor_names = FACTOR_NAMES

    def __init__(self, image_size: int = 64, factor_sizes=(3, 6, 40, 32, 32)):
        factor_sizes = tuple(int(s) for s in factor_sizes)
        if len(factor_sizes) != len(FACTOR_NAMES) or min(factor_sizes) < 1:
            raise UserError(
                f"factor_sizes={factor_sizes}; give five positive sizes for {FACTOR_NAMES}."
            )
        if factor_sizes[0] > len(SHAPE_NAMES):
            raise UserError(f"shape factor size {factor_sizes[0]}; at most 3 ({SHAPE_NAMES}).")
        self.image_size = int(image_size)
        self.factor_sizes = factor_sizes
        self.max_half_size = 0.16 * self.image_size
        num_positions = max(factor_sizes[3], factor_sizes[4])
        reach = _MAX_RADIUS * self.max_half_size
        room = self.image_size - 1 - 2 * reach
        if num_positions > 1 and room < num_positions - 1:
            fits = max(1, int(room) + 1)
            raise UserError(
                f"{num_positions} positions do not fit in {self.image_size} px at one pixel "
                f"per step; use at most {fits} positions or a larger image_size."
            )
        self.position_step = max(1, int(room // (num_positions - 1))) if num_positions > 1 else 1
        # Half-window that holds every shape; rendering happens in this window only.
        self._window = int(math.ceil(reach)) + 1

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 1)

    @property
    def num_combinations(self) -> int:
        return int(np.prod(self.factor_sizes))

    def scale_values(self) -> np.ndarray:
        """Half-size of the shape in pixels for each scale index: [factor_sizes[1]]."""
        return self.max_half_size * np.linspace(0.5, 1.0, self.factor_sizes[1])

    def orientation_values(self) -> np.ndarray:
        """Rotation angle in radians for each orientation index: [factor_sizes[2]]."""
        return 2.0 * np.pi * np.arange(self.factor_sizes[2]) / self.factor_sizes[2]

    def position_values(self, axis: int) -> np.ndarray:
        """Pixel coordinate of the centre for each index of ``pos_x`` (3) or ``pos_y`` (4)."""
        n = self.factor_sizes[axis]
        first = (self.image_size - 1 - self.position_step * (n - 1)) / 2.0
        return first + self.position_step * np.arange(n)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={s}" for n, s in zip(FACTOR_NAMES, self.factor_sizes, strict=True))
        return f"Shapes(image_size={self.image_size}, {sizes})"

    def sample_factors(self, num: int, rng) -> np.ndarray:
        """``num`` factor vectors, each factor uniform and independent: [num, 5] int64.

        rng: a ``np.random.Generator`` or an int seed.
        """
        rng = np.random.default_rng(rng)
        return rng.integers(0, self.factor_sizes, size=(int(num), self.num_factors))

    def all_factors(self) -> np.ndarray:
        """Every factor combination once, last factor fastest: [num_combinations, 5] int64."""
        grids = np.meshgrid(*[np.arange(s) for s in self.factor_sizes], indexing="ij")
        return np.stack([g.ravel() for g in grids], axis=1)

    def check_factors(self, factors) -> np.ndarray:
        """``factors`` as an int64 array [N, 5], or a UserError naming what is wrong."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise UserError(
                f"factors have shape {factors.shape}; expected [N, {self.num_factors}] "
                f"with columns {FACTOR_NAMES}."
            )
        if not np.issubdtype(factors.dtype, np.integer):
            raise UserError(f"factors must be integer indices, got {factors.dtype}.")
        too_big = factors >= np.asarray(self.factor_sizes)
        if np.any(factors < 0) or np.any(too_big):
            column = int(np.argmax(np.any((factors < 0) | too_big, axis=0)))
            raise UserError(
                f"factor {FACTOR_NAMES[column]!r} has an index outside "
                f"[0, {self.factor_sizes[column] - 1}]; sample with sample_factors."
            )
        return factors.astype(np.int64)

    def sample_observations_from_factors(self, factors, rng=None) -> np.ndarray:
        """Render one image per factor vector: factors [N, 5] int → images [N, H, W, 1] uint8.

        Deterministic: ``rng`` is accepted for the common dataset interface and not used.
        """
        del rng
        factors = self.check_factors(factors)
        images = np.zeros((len(factors), self.image_size, self.image_size, 1), np.uint8)
        for start in range(0, len(factors), _RENDER_CHUNK):
            chunk = factors[start : start + _RENDER_CHUNK]
            images[start : start + len(chunk), :, :, 0] = self._render(chunk)
        return images

    def sample(self, num: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """Random factors [num, 5] and their images [num, H, W, 1] uint8."""
        factors = self.sample_factors(num, rng)
        return factors, self.sample_observations_from_factors(factors)

    def _render(self, factors: np.ndarray) -> np.ndarray:
        """Images [n, H, W] uint8 for factors [n, 5]: rasterise in a window, then paste."""
        n = len(factors)
        w = self._window
        centre_x = self.position_values(3)[factors[:, 3]]
        centre_y = self.position_values(4)[factors[:, 4]]
        # Every centre has the same sub-pixel phase (0 or 0.5), so one window grid serves all.
        corner_x = np.floor(centre_x).astype(np.int64) - w
        corner_y = np.floor(centre_y).astype(np.int64) - w
        offsets = np.arange(-w, w + 1, dtype=np.float32)
        dx = (offsets - np.float32(centre_x[0] - np.floor(centre_x[0])))[None, None, :]
        dy = (offsets - np.float32(centre_y[0] - np.floor(centre_y[0])))[None, :, None]

        theta = self.orientation_values()[factors[:, 2]]
        cos = np.cos(theta).astype(np.float32)[:, None, None]
        sin = np.sin(theta).astype(np.float32)[:, None, None]
        half_size = self.scale_values()[factors[:, 1]].astype(np.float32)[:, None, None]
        # Rotating the shape anticlockwise on screen (y down) = rotating the pixel offsets
        # clockwise into shape coordinates.
        u = (cos * dx - sin * dy) / half_size
        v = (sin * dx + cos * dy) / half_size
        window = _inside_unit_shape(factors[:, 0, None, None], u, v)

        size = self.image_size + 2 * w + 1
        canvas = np.zeros((n, size, size), np.uint8)
        span = np.arange(2 * w + 1)
        rows = (corner_y + w)[:, None, None] + span[None, :, None]
        cols = (corner_x + w)[:, None, None] + span[None, None, :]
        canvas[np.arange(n)[:, None, None], rows, cols] = window.astype(np.uint8) * 255
        return canvas[:, w : w + self.image_size, w : w + self.image_size]
