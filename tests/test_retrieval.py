"""Similar-image search (notes 004): precision@k of nearest-neighbour retrieval."""

import numpy as np
import pytest

from ssl_jax.errors import UserError
from ssl_jax.evaluation import precision_at_k

# Six points on a line, labels in two runs: 0 0 0 | 1 1 1 (with one 1 misplaced among the 0s).
POINTS = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [2.5]])
LABELS = np.array([0, 0, 0, 1, 1, 1])


def test_leave_one_out_precision_counts_the_neighbours_that_share_the_label():
    result = precision_at_k(POINTS, LABELS, ks=(1, 2), metric="euclidean")
    # Nearest other point of each: 1, 0 or 2, 5, 4, 3, 2 → labels 0, 0, 1, 1, 1, 0.
    # Point 1 (at 1.0) is equidistant from 0 and 2, both label 0.
    want_p1 = np.mean([1, 1, 0, 1, 1, 0])
    assert result["precision"][1] == pytest.approx(want_p1)
    # Two nearest others: {1, 2}, {0, 2}, {5, 1}, {4, 5}, {3, 5}, {2, 1} → 2, 2, 1, 2, 2, 0 hits.
    assert result["precision"][2] == pytest.approx(np.mean([2, 2, 1, 2, 2, 0]) / 2)
    assert result["num_queries"] == result["num_gallery"] == 6


def test_separate_queries_may_retrieve_any_gallery_item_and_cosine_ignores_scale():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 0.1]])
    queries = np.array([[10.0, 0.0], [0.0, 0.1]])
    result = precision_at_k(gallery, [0, 1, 0], queries, [0, 1], ks=(1, 2), metric="cosine")
    assert result["precision"] == {1: 1.0, 2: pytest.approx(0.75)}


def test_more_neighbours_than_the_gallery_holds_is_a_one_line_error():
    with pytest.raises(UserError, match="precision@6 needs at least 6 gallery items"):
        precision_at_k(POINTS, LABELS, ks=(6,))
