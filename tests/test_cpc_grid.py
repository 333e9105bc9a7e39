"""CPC on 2-D patch grids (notes 002 §2.8): the overlapping grid, a context that has read only
the rows above, the InfoNCE over the global batch's patches, and learning on digits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.data.spec import ArraySpec, sample_batch
from ssl_jax.errors import UserError
from ssl_jax.models import build_encoder
from ssl_jax.models.audio import GRUContext
from ssl_jax.objectives import make_objective
from ssl_jax.objectives.cpc_grid import grid_patches
from tests.configs import tiny_config
from tests.learning import learning_config, pretrain

DIGITS = {"images": ArraySpec((8, 8, 1), "float32", "images")}
GRID = dict(patch_size=4, patch_stride=2, prediction_steps=1, context_dim=16)


def test_grid_patches_are_the_overlapping_windows():
    images = np.random.default_rng(0).random((2, 12, 10, 3)).astype(np.float32)
    patches = np.asarray(grid_patches(jnp.asarray(images), 4, 3))
    assert patches.shape == (2, 3, 3, 4, 4, 3)
    for i in range(3):
        for j in range(3):
            window = images[:, 3 * i : 3 * i + 4, 3 * j : 3 * j + 4]
            np.testing.assert_array_equal(patches[:, i, j], window)


def test_the_context_of_a_row_has_read_only_the_rows_above_it():
    config = tiny_config("cpc_grid", **GRID)
    config.model = {"name": "small_cnn", "widths": (8,), "convs_per_stage": 1, "pool": "avg"}
    objective = make_objective(config, DIGITS)
    params, batch_stats, _ = objective.init(jax.random.key(0), sample_batch(DIGITS, 4))
    encoder = build_encoder(config.model, (4, 4, 1))
    context = GRUContext(features=16)

    def contexts(images):  # [B, rows, cols, C]
        patches = grid_patches(images, 4, 2)
        variables = {"params": params["encoder"], "batch_stats": batch_stats["encoder"]}
        z = encoder.apply(variables, patches.reshape(-1, 4, 4, 1), train=False)
        z = z.reshape(4, 3, 3, -1).transpose(0, 2, 1, 3).reshape(12, 3, -1)
        c = context.apply({"params": params["context"]}, z)
        return np.asarray(c.reshape(4, 3, 3, -1).transpose(0, 2, 1, 3))

    images = np.random.default_rng(1).random((4, 8, 8, 1)).astype(np.float32)
    changed = images.copy()
    changed[:, 6:] = 1.0 - changed[:, 6:]  # pixel rows 6-7 lie in the last row of patches only
    before, after = contexts(jnp.asarray(images)), contexts(jnp.asarray(changed))
    np.testing.assert_array_equal(before[:, :2], after[:, :2])
    assert np.abs(before[:, 2] - after[:, 2]).max() > 1e-4
    # The loss scores every anchor against every patch one row below in the batch.
    batch = {"images": jnp.asarray(images)}
    value, output = objective.loss(
        params, batch_stats, objective.init(jax.random.key(0), batch)[2], batch,
        jax.random.key(1), 0, group="model",
    )  # fmt: skip
    candidates = 4 * 3 * 2  # B · columns · anchor rows
    np.testing.assert_allclose(
        float(output.metrics["mi_bound"]), np.log(candidates) - float(value), rtol=1e-6
    )


def test_a_horizon_beyond_the_grid_is_a_one_line_error():
    with pytest.raises(UserError, match="prediction_steps must be in 1..2"):
        make_objective(tiny_config("cpc_grid", **{**GRID, "prediction_steps": 3}), DIGITS)
    with pytest.raises(UserError, match="patch_size 9"):
        make_objective(tiny_config("cpc_grid", **{**GRID, "patch_size": 9}), DIGITS)


def test_cpc_grid_learns_on_digits(tmp_path):
    """150 steps of 64 digits, 4×4 patches 2 apart (a 3 × 3 grid), one row ahead. The context
    representation, measured at seeds 0 / 1 (trained vs random init): kNN 0.883 vs 0.820 /
    0.880 vs 0.810, linear 0.937 vs 0.910 / 0.950 vs 0.897. The patch features averaged over
    the grid do not beat random init at this budget (kNN 0.810 vs 0.840 / 0.830 vs 0.830);
    on the MNIST subset (8×8 patches 4 apart, 500 steps) they gain +0.013 kNN and +0.026
    linear, the context +0.10 and +0.045 (docs/prediction.md). The test asks for half the
    smaller kNN gain of the context."""
    config = learning_config(
        "cpc_grid", num_steps=150, batch_size=64, model=dict(widths=(16, 32), pool="avg"), **GRID
    )
    config.objective.context_dim = 64
    trained, random_init = pretrain(config, tmp_path, "context")["knn"]
    assert trained > random_init + 0.03, (trained, random_init)
