"""Input checks shared by the evaluation protocols: one clear error per mistake."""

import numpy as np

from ssl_jax.errors import UserError


def check_features(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise UserError(
            f"{name} features have shape {x.shape}; expected [N, D] (flatten or pool maps first)."
        )
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x).all(axis=1)))
        raise UserError(f"{name} features contain NaN or inf ({bad} rows); check the encoder.")
    return x.astype(np.float32)


def check_features_and_labels(x, y, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = check_features(x, name)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(
            f"{name}: {len(x)} feature rows but labels of shape {y.shape}; give one integer "
            "label per row."
        )
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise UserError(f"{name} labels must be integers (class indices), got {y.dtype}.")
    if len(y) and y.min() < 0:
        raise UserError(f"{name} labels must be non-negative class indices.")
    return x, y.astype(np.int32)


def check_same_dimensions(train_x: np.ndarray, test_x: np.ndarray) -> None:
    """Train and test features must come from the same layer: equal widths."""
    if train_x.shape[1] != test_x.shape[1]:
        raise UserError(
            f"train features have {train_x.shape[1]} dimensions, test {test_x.shape[1]}; "
            "extract both from the same layer."
        )
