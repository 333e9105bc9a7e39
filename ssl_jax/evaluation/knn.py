"""Weighted k-nearest-neighbour classification (the protocol of Wu et al. 2018 and DINO).

Features are L2-normalised; a test example's k most cosine-similar training examples vote for
their labels with weight exp(sim / T), T = 0.07; the class with the largest total wins.
Test examples are processed in chunks of ``chunk_size`` (the last chunk padded, so one
compilation serves them all): the [n_test, n_train] similarity matrix never exists at once.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.errors import UserError
from ssl_jax.evaluation.checks import check_features_and_labels, check_same_dimensions


def _normalise(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _top_k_votes(train_x, train_y, test_chunk, *, k, num_classes, temperature):
    """Per k' ≤ k prefix-summed votes: [chunk, k, num_classes] (sorted neighbours)."""
    similarity = test_chunk @ train_x.T
    values, index = jax.lax.top_k(similarity, k)
    weights = jnp.exp(values / temperature)
    votes = weights[..., None] * jax.nn.one_hot(train_y[index], num_classes)
    return jnp.cumsum(votes, axis=1)


def _knn_predictions(train_x, train_y, test_x, ks, temperature, num_classes, chunk_size):
    k_max = max(ks)
    train_x = jnp.asarray(_normalise(train_x))
    train_y = jnp.asarray(train_y)
    test_x = _normalise(test_x)
    predictions = {k: [] for k in ks}
    for start in range(0, len(test_x), chunk_size):
        chunk = test_x[start : start + chunk_size]
        real = len(chunk)
        if real < chunk_size and len(test_x) > chunk_size:
            chunk = np.concatenate(
                [chunk, np.zeros((chunk_size - real, chunk.shape[1]), chunk.dtype)]
            )
        votes = _top_k_votes(
            train_x,
            train_y,
            jnp.asarray(chunk),
            k=k_max,
            num_classes=num_classes,
            temperature=temperature,
        )
        votes = np.asarray(votes)[:real]
        for k in ks:
            predictions[k].append(np.argmax(votes[:, k - 1], axis=1))
    return {k: np.concatenate(v) for k, v in predictions.items()}


def _prepare(train_x, train_y, test_x, test_y, num_classes):
    train_x, train_y = check_features_and_labels(train_x, train_y, "train")
    test_x, test_y = check_features_and_labels(test_x, test_y, "test")
    check_same_dimensions(train_x, test_x)
    num_classes = num_classes or int(train_y.max()) + 1
    return train_x, train_y, test_x, test_y, num_classes


def knn_classify(
    train_x, train_y, test_x, test_y, *, k=20, temperature=0.07, num_classes=None, chunk_size=1024
) -> dict:
    """Weighted kNN accuracy on the test split; ``k`` larger than the training set is an error."""
    train_x, train_y, test_x, test_y, num_classes = _prepare(
        train_x, train_y, test_x, test_y, num_classes
    )
    if not 1 <= k <= len(train_x):
        raise UserError(
            f"k={k} but the training set has {len(train_x)} examples; use 1 <= k <= {len(train_x)}."
        )
    predictions = _knn_predictions(
        train_x, train_y, test_x, (k,), temperature, num_classes, chunk_size
    )
    return {
        "protocol": "knn",
        "test_top1": float(np.mean(predictions[k] == test_y)),
        "settings": {
            "k": k,
            "temperature": temperature,
            "similarity": "cosine",
            "weights": "exp(sim / T)",
            "num_classes": num_classes,
            "train_examples": len(train_x),
            "test_examples": len(test_x),
        },
    }


def knn_sweep(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    ks=(10, 20, 100, 200),
    temperature=0.07,
    num_classes=None,
    chunk_size=1024,
) -> dict:
    """Weighted kNN accuracy for each k in ``ks`` (capped by the training-set size), one pass."""
    train_x, train_y, test_x, test_y, num_classes = _prepare(
        train_x, train_y, test_x, test_y, num_classes
    )
    ks = sorted({min(k, len(train_x)) for k in ks})
    predictions = _knn_predictions(
        train_x, train_y, test_x, tuple(ks), temperature, num_classes, chunk_size
    )
    accuracies = {str(k): float(np.mean(predictions[k] == test_y)) for k in ks}
    return {
        "protocol": "knn",
        "test_top1": accuracies[str(20)] if "20" in accuracies else accuracies[str(ks[0])],
        "test_top1_by_k": accuracies,
        "settings": {
            "ks": ks,
            "temperature": temperature,
            "similarity": "cosine",
            "weights": "exp(sim / T)",
            "num_classes": num_classes,
            "train_examples": len(train_x),
            "test_examples": len(test_x),
            "headline": "k=20 when available",
        },
    }
