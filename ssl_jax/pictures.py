"""Picture grids of generative objectives: reconstructions, samples and interpolations.

An objective that generates images gives ``Objective.pictures(params, batch_stats, images,
key) -> {name: [rows, cols, H, W, C] float in [0, 1]}``; at the end of a run the trainer
writes each as ``<workdir>/pictures/<name>_<step>.png`` and to TensorBoard (`save_pictures`).
"""

import os

import numpy as np

PICTURE_EXAMPLES = 16  # held-out images the pictures are made from
_BORDER = 1
_MIN_CELL = 56  # pixels: an 8×8 digit is scaled up 7× to be seen


def image_grid(pictures) -> np.ndarray:
    """[rows, cols, H, W, C] in [0, 1] → one uint8 image [rows·H', cols·W', 3] with borders,
    each cell scaled up (nearest neighbour) to at least `_MIN_CELL` pixels."""
    pictures = np.clip(np.asarray(pictures, np.float32), 0.0, 1.0)
    rows, cols, height, width, channels = pictures.shape
    if channels == 1:
        pictures = np.repeat(pictures, 3, axis=-1)
    scale = max(1, -(-_MIN_CELL // max(height, width)))
    pictures = pictures.repeat(scale, axis=2).repeat(scale, axis=3)
    cell_h, cell_w = height * scale + _BORDER, width * scale + _BORDER
    grid = np.ones((rows * cell_h + _BORDER, cols * cell_w + _BORDER, 3), np.float32)
    for r in range(rows):
        for c in range(cols):
            top, left = r * cell_h + _BORDER, c * cell_w + _BORDER
            grid[top : top + height * scale, left : left + width * scale] = pictures[r, c]
    return np.round(grid * 255).astype(np.uint8)


def save_pictures(workdir: str, step: int, pictures: dict) -> list[str]:
    """Writes each grid of ``pictures`` as a PNG under ``workdir/pictures`` and to TensorBoard;
    returns the PNG paths."""
    from PIL import Image
    from tensorboardX import SummaryWriter

    directory = os.path.join(workdir, "pictures")
    os.makedirs(directory, exist_ok=True)
    paths = []
    writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
    try:
        for name, value in sorted(pictures.items()):
            grid = image_grid(value)
            path = os.path.join(directory, f"{name}_{step}.png")
            Image.fromarray(grid).save(path)
            writer.add_image(f"pictures/{name}", grid, step, dataformats="HWC")
            paths.append(path)
    finally:
        writer.close()
    return paths
