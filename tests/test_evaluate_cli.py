"""`python -m ssl_jax.evaluate` and the SGD protocols on a trained encoder."""

import json
import os

import numpy as np
import pytest

from ssl_jax import evaluate, train
from ssl_jax.encoder import load_encoder
from ssl_jax.evaluation import finetune, linear_probe_sgd
from tests.test_cli_and_checkpoints import write_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("evaluate")
    config = write_config(directory, num_steps=4, checkpoint_every=4)
    workdir = str(directory / "run")
    assert train.main(["--config", config, "--workdir", workdir]) == 0
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


def test_a_directory_that_is_not_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a run")
    assert evaluate.main(["--checkpoint", str(tmp_path), "--protocol", "knn"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not an ssl_jax run" in err


def test_unknown_protocol_lists_the_protocols(trained_run, capsys):
    _, workdir = trained_run
    assert evaluate.main(["--checkpoint", workdir, "--protocol", "probe"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disentanglement" in err


def test_options_are_parsed_as_json_and_bad_ones_named(tmp_path, capsys):
    assert evaluate.parse_options(["steps=20", "l2_grid=[1, 0.01]", "head_init=zero"]) == {
        "steps": 20,
        "l2_grid": [1, 0.01],
        "head_init": "zero",
    }
    args = ["--checkpoint", str(tmp_path), "--protocol", "knn", "--set", "k"]
    assert evaluate.main(args) == 2
    assert "write KEY=VALUE" in capsys.readouterr().err


def test_fewshot_protocol_reports_ridge_and_lbfgs(trained_run):
    _, workdir = trained_run
    report = evaluate.evaluate(workdir, "fewshot")
    trained = report["results"]["trained"]
    for method in ("ridge", "lbfgs"):
        assert trained[method]["settings"]["shots"] == [1, 5, 10, 25]
        assert trained[method]["settings"]["draws"] == 5
        assert trained[f"{method}_5shot_mean"] == trained[method]["test_top1_by_shots"]["5"]["mean"]
    with open(os.path.join(workdir, "eval", "fewshot.json")) as f:
        assert json.load(f)["results"]["random_init"]["ridge"]["settings"]["seed"] == 0


def test_linear_protocol_records_grid_choice_and_splits(trained_run):
    _, workdir = trained_run
    report = evaluate.evaluate(workdir, "linear", options={"l2_grid": [1e2, 1.0, 1e-2]})
    trained = report["results"]["trained"]
    assert trained["settings"]["l2_grid"] == [1e2, 1.0, 1e-2]
    assert any(trained["best_l2"] == pytest.approx(float(k)) for k in trained["sweep"])
    assert report["splits"]["train"] == trained["settings"]["refit_examples"]
    assert report["options"] == {"l2_grid": [1e2, 1.0, 1e-2]}


def test_diagnostics_protocol_writes_alignment_and_plots(trained_run):
    _, workdir = trained_run
    report = evaluate.evaluate(workdir, "diagnostics")
    trained = report["results"]["trained"]
    assert {"embedding_std", "effective_rank_centred", "uniformity", "alignment_output"} <= set(
        trained
    )
    for name in ("trained", "random"):
        for method in ("pca", "tsne"):
            assert os.path.isfile(
                os.path.join(workdir, "eval", f"diagnostics_{name}_output_{method}.png")
            )


def test_disentanglement_protocol_scores_generated_shapes(trained_run):
    _, workdir = trained_run
    options = {
        "shapes": {"image_size": 16, "factor_sizes": (3, 3, 3, 4, 4)},
        "num_points": 200,
        "num_train": 20,
        "num_eval": 10,
        "batch_size": 8,
    }
    report = evaluate.evaluate(workdir, "disentanglement", options=options)
    trained, untrained = report["results"]["trained"], report["results"]["random_init"]
    scores = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness")
    for key in scores:
        assert 0.0 <= trained[key] <= 1.0
    # Each encoder's own codes are scored, under the same settings: the checkpoint and its
    # random initialisation cannot tie on every score.
    assert trained["settings"] == untrained["settings"]
    assert [trained[key] for key in scores] != [untrained[key] for key in scores]
    assert "resized" in trained["settings"]["images"]
    assert trained["settings"]["mig"]["num_points"] == 200


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
    lars = linear_probe_sgd(encoder, *args, steps=60, batch_size=64, lr=2.0, optimizer="lars")
    assert lars["test_top1"] > 0.5 and lars["settings"]["optimizer"] == "lars momentum 0.9"
