"""The end-of-pretraining readout: kNN and linear-probe accuracy on the held-out split.

Three representations are compared under the same protocols: the trained encoder, the same
encoder at its random initialisation (the run's own step-0 parameters), and raw pixels. The
protocols are those of `ssl_jax.evaluation`: weighted kNN (cosine, k=20, T=0.07 by default)
and the L-BFGS linear probe with its regularisation chosen on a validation split of the
training data (never on the held-out split).
"""

import numbers

import numpy as np

from ssl_jax.encoder import batched_apply, encoder_variables, make_embed_fn
from ssl_jax.errors import UserError
from ssl_jax.evaluation import knn_classify, linear_probe
from ssl_jax.models import build_encoder


def check_readout_config(readout) -> None:
    """Refuses readout settings that would only fail after pretraining."""
    grid = readout.l2_grid
    if not isinstance(grid, (tuple, list)) or not all(
        isinstance(v, numbers.Real) and v > 0 for v in grid
    ):
        raise UserError(
            f"readout.l2_grid must be a tuple of positive λ values, got {grid!r}; "
            "e.g. --config.readout.l2_grid='(1.0, 0.1, 0.01)', or () for the full default grid."
        )


def embed_split(embed, variables, images, batch_size):
    return batched_apply(lambda x: embed(variables, x), images, batch_size)


def run_readout(config, dataset, state, initial_state, print_table: bool = True) -> dict:
    """Readout of ``state`` beside ``initial_state`` and pixels; returns the readout dict."""
    import jax.numpy as jnp

    encoder = build_encoder(config.model, dataset.image_shape, jnp.dtype(config.compute_dtype))
    embed = make_embed_fn(encoder)
    batch_size = config.readout.batch_size
    pixels = lambda images: (
        images.reshape(len(images), -1).astype(np.float32)
        / (255.0 if images.dtype == np.uint8 else 1.0)
    )
    representations = {
        "trained": encoder_variables(state.params, state.batch_stats),
        "random_init": encoder_variables(initial_state.params, initial_state.batch_stats),
        "pixels": None,
    }
    l2_grid = tuple(float(v) for v in config.readout.l2_grid) or None
    result = {"knn": {}, "linear": {}}
    for name, variables in representations.items():
        if variables is None:
            train_x, test_x = pixels(dataset.train_images), pixels(dataset.test_images)
        else:
            train_x = embed_split(embed, variables, dataset.train_images, batch_size)
            test_x = embed_split(embed, variables, dataset.test_images, batch_size)
        knn = knn_classify(
            train_x,
            dataset.train_labels,
            test_x,
            dataset.test_labels,
            k=config.readout.knn_k,
            temperature=config.readout.knn_temperature,
        )
        linear = linear_probe(
            train_x, dataset.train_labels, test_x, dataset.test_labels, l2_grid=l2_grid
        )
        result["knn"][name] = float(knn["test_top1"])
        result["linear"][name] = float(linear["test_top1"])
    result["settings"] = {
        "held_out_examples": int(len(dataset.test_images)),
        "train_examples": int(len(dataset.train_images)),
        "knn": {"k": config.readout.knn_k, "temperature": config.readout.knn_temperature},
        "linear": "L-BFGS multinomial logistic regression, L2 chosen on a validation split",
        "linear_l2_grid": linear["settings"]["l2_grid"],
    }
    if print_table:
        print(format_table(result))
    return result


def format_table(result: dict) -> str:
    rows = [f"{'held-out accuracy':<18}{'trained':>10}{'random init':>13}{'pixels':>9}"]
    for protocol in ("knn", "linear"):
        r = result[protocol]
        rows.append(
            f"{protocol:<18}{r['trained']:>10.4f}{r['random_init']:>13.4f}{r['pixels']:>9.4f}"
        )
    return "\n".join(rows)
