"""`python -m ssl_jax.evaluate` and the SGD protocols on a trained encoder."""

import json
import os

import numpy as np
import pytest

from ssl_jax import evaluate
from ssl_jax.encoder import load_encoder
from ssl_jax.evaluation import finetune, linear_probe_sgd
from tests.test_cli_and_checkpoints import run_cli, write_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("evaluate")
    config = write_config(directory, num_steps=4, checkpoint_every=4)
    workdir = str(directory / "run")
    run_cli("--config", config, "--workdir", workdir)
    return config, workdir


def test_knn_protocol_writes_results_beside_the_random_baseline(trained_run, capsys):
    _, workdir = trained_run
    assert evaluate.main(["--checkpoint", workdir, "--protocol", "knn"]) == 0
    with open(os.path.join(workdir, "eval", "knn.json")) as f:
        report = json.load(f)
    assert set(report["results"]) == {"trained", "random_init"}
    assert report["results"]["trained"]["settings"]["ks"] == [10, 20, 100, 200]
    assert "test_top1" in capsys.readouterr().out
    # Features were cached for the next feature protocol.
    assert os.listdir(os.path.join(workdir, "eval", "features"))


def test_layer_probe_and_random_checkpoint(trained_run, tmp_path):
    config, workdir = trained_run
    assert (
        evaluate.main(["--checkpoint", workdir, "--protocol", "diagnostics", "--layer", "stage1"])
        == 0
    )
    out = str(tmp_path / "random")
    assert (
        evaluate.main(["--checkpoint", f"random:{config}", "--protocol", "knn", "--output", out])
        == 0
    )
    with open(os.path.join(out, "knn.json")) as f:
        assert list(json.load(f)["results"]) == ["random_init"]


def test_unknown_layer_lists_the_available_ones(trained_run, capsys):
    _, workdir = trained_run
    assert (
        evaluate.main(["--checkpoint", workdir, "--protocol", "linear", "--layer", "stage9"]) == 2
    )
    err = capsys.readouterr().err
    assert "unknown layer 'stage9'" in err and "stage1, stage2" in err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert evaluate.main(["--checkpoint", str(tmp_path / "nope"), "--protocol", "knn"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_sgd_probe_and_finetuning_learn_on_digits(trained_run, digits):
    _, workdir = trained_run
    encoder = load_encoder(workdir)
    args = (digits.train_images, digits.train_labels, digits.test_images, digits.test_labels)
    probe = linear_probe_sgd(encoder, *args, steps=60, batch_size=64, lr=0.1)
    tuned = finetune(
        encoder, *args, steps=60, batch_size=64, head_init="linear_probe", probe_steps=30
    )
    assert probe["test_top1"] > 0.5 and tuned["test_top1"] > 0.5
    assert tuned["settings"]["backbone_lr"] == pytest.approx(0.1 * tuned["settings"]["head_lr"])
    assert np.isfinite(probe["train_top1"])
