"""Smoke test of experiments/layer_correspondence.py and the Tiny-10 model it trains."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.errors import UserError
from ssl_jax.models.tiny10 import Tiny10
from tests.configs import load_experiment


def _experiment():
    return load_experiment("layer_correspondence")


def test_tiny10_returns_every_layer_with_the_papers_shapes():
    model = Tiny10(num_classes=10)

    def forward(images):
        variables = model.init(jax.random.key(0), images, train=False)
        return model.apply(variables, images, train=False, return_layers=True)

    # Shapes only: traced abstractly, so nothing is compiled or run.
    logits, layers = jax.eval_shape(forward, jnp.zeros((2, 28, 28, 1)))
    assert logits.shape == (2, 10)
    shapes = {name: value.shape[1:] for name, value in layers.items()}
    assert shapes == {
        "conv1": (28, 28, 16),
        "conv2": (28, 28, 16),
        "conv3": (14, 14, 32),
        "conv4": (14, 14, 32),
        "conv5": (14, 14, 32),
        "conv6": (7, 7, 64),
        "conv7": (5, 5, 64),
        "conv8": (5, 5, 64),
        "pool": (64,),
        "logits": (10,),
    }
    with pytest.raises(UserError, match="at least 9×9"):
        model.check_input_shape((8, 8, 1))


def test_layer_correspondence_experiment_produces_the_table(tmp_path, capsys, monkeypatch, mnist):
    experiment = _experiment()
    # The session's MNIST subset (conftest), parsed once for all the tests that use it.
    monkeypatch.setattr(experiment, "load_dataset", {"mnist_subset": mnist}.__getitem__)
    summary = experiment.main(
        [
            "--out",
            str(tmp_path),
            "--num-networks=2",
            "--epochs=0.05",
            "--num-train=320",
            "--batch-size=32",
            "--num-examples=40",
            "--metrics=CKA (linear),PWCCA,CCA (ρ̄)",
        ]
    )
    printed = capsys.readouterr().out
    results = summary["results"]
    # The printed row is the measured one (percentages of the returned fractions).
    cka = [100 * results[rule]["CKA (linear)"]["accuracy"] for rule in ("flatten", "mean")]
    assert f"| CKA (linear) | {cka[0]:.1f} | {cka[1]:.1f} |" in printed
    assert "40 held-out MNIST examples" in printed
    # 2 networks, 9 layers: 2·1·9 = 18 (A, B, layer) cases, undefined ones counting as misses,
    # so each accuracy is a whole number of hits out of 18, at most the defined cases.
    for rule in ("flatten", "mean"):
        for label in ("CKA (linear)", "PWCCA", "CCA (ρ̄)"):
            hits = 18 * results[rule][label]["accuracy"]
            assert hits == pytest.approx(round(hits), abs=1e-9)
            assert round(hits) <= 18 - results[rule][label]["undefined"]
    # 40 examples: every flattened conv map is wider than n, so CCA is undefined there.
    assert summary["results"]["flatten"]["CCA (ρ̄)"]["undefined"] >= 2 * 8
    assert (tmp_path / "cka_heatmap_flatten.png").stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["num_examples"] == 40


def test_correspondence_counts_hits_and_symmetrises_asymmetric_metrics():
    experiment = _experiment()
    # Two networks, two layers; the A -> B block maps layer 0 to 1, the B -> A block is right.
    s = np.array(
        [
            [1.0, 0.0, 0.2, 0.9],
            [0.0, 1.0, 0.1, 0.8],
            [0.9, 0.1, 1.0, 0.0],
            [0.1, 0.9, 0.0, 1.0],
        ]
    )
    assert experiment.correspondence(s, 2, 2, symmetric=True) == (0.75, 0)
    # Symmetrised S_AB + S_BAᵀ: row 0 of block (A, B) becomes (0.2 + 0.9, 0.9 + 0.1): a hit.
    assert experiment.correspondence(s, 2, 2, symmetric=False) == (1.0, 0)
    s[1, 3] = np.nan
    assert experiment.correspondence(s, 2, 2, symmetric=True) == (0.5, 1)
