"""The supervised baseline through the same trainer, the transfer protocol and the comparison
experiment, on one tiny run: supervised pretraining on digits 0–4, probed on 5–9."""

import json
import os
import textwrap

import numpy as np
import pytest

from ssl_jax import train
from ssl_jax.data import load_dataset
from ssl_jax.evaluation.transfer import class_subset, save_npz
from tests.configs import load_experiment


def _protocol_comparison():
    return load_experiment("protocol_comparison")


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("transfer")
    data = save_npz(
        class_subset(load_dataset("digits"), range(5)),
        str(directory / "digits_0to4.npz"),
        splits=("train",),
    )
    config = directory / "config_supervised.py"
    config.write_text(
        textwrap.dedent(
            f"""\
            import ml_collections
            from tests.configs import tiny_config

            def get_config():
                c = tiny_config("simclr")
                c.dataset = "npz:{data}"
                c.objective = ml_collections.ConfigDict(
                    dict(name="supervised", num_classes=5, smoothing=0.1, augment=False)
                )
                c.num_steps = 4
                c.checkpoint_every = 4
                return c
            """
        )
    )
    workdir = str(directory / "run")
    assert train.main(["--config", str(config), "--workdir", workdir]) == 0
    return workdir


def test_supervised_pretraining_logs_collapse_diagnostics(transfer_run):
    with open(os.path.join(transfer_run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    logged = [r for r in records if "embedding_std" in r]
    # RankMe of a batch of 32 feature vectors: above 1 unless the features collapsed to one
    # direction, at most 32 unless it was computed over something other than the batch.
    assert logged and all(1.0 < r["effective_rank"] <= 32.0 for r in logged)
    assert all(0.0 < r["embedding_std"] < 1.0 for r in logged)


def test_transfer_pretraining_saw_only_the_pretraining_classes(transfer_run):
    with open(os.path.join(transfer_run, "config.json")) as f:
        dataset = load_dataset(json.load(f)["dataset"])

    # The run's data (its own train/test split of the npz) are exactly the training digits 0-4
    # of the full set, selected here independently: the same examples, none added or lost.
    def examples(images, labels):
        pairs = zip(images, labels, strict=True)
        return sorted(bytes(image) + bytes([int(label)]) for image, label in pairs)

    digits = load_dataset("digits")
    kept = digits.train_labels < 5
    run_images = np.concatenate([dataset.train_images, dataset.test_images])
    run_labels = np.concatenate([dataset.train_labels, dataset.test_labels])
    assert examples(run_images, run_labels) == examples(
        digits.train_images[kept], digits.train_labels[kept]
    )


def test_protocol_comparison_on_the_held_out_classes(transfer_run, tmp_path):
    pc = _protocol_comparison()
    settings = {
        "draws": 2,
        "sgd": {"steps": 5, "batch_size": 32, "lr": 0.1},
        "finetune_all": {"steps": 5, "batch_size": 32, "lr": 0.05, "backbone_lr_scale": 0.1},
        "finetune_shots": {"steps": 3, "lr": 0.05, "backbone_lr_scale": 0.1},
    }
    report = pc.compare([transfer_run], "digits", [5, 6, 7, 8, 9], settings)
    assert list(report["columns"]) == ["run", "random_init"]
    rows = report["columns"]["run"]["rows"]
    assert set(rows) == set(pc.ROWS)
    assert len(rows["finetune_5shot"]["values"]) == 2
    # Every entry is an accuracy on the held-out classes' test set: a whole number of its
    # examples, and each row's mean is the mean of its draws.
    held_out = class_subset(load_dataset("digits"), range(5, 10))
    num_test = len(held_out.test_labels)
    for r in rows.values():
        correct = np.asarray(r["values"]) * num_test
        np.testing.assert_allclose(correct, np.round(correct), atol=1e-6)
        assert np.round(correct).min() >= 0 and np.round(correct).max() <= num_test
        assert r["mean"] == pytest.approx(np.mean(r["values"]))
    # The 5-shot linear and fine-tuned rows used the same support sets.
    labels = held_out.train_labels
    sets = pc.support_sets(labels, 5, 2, 0)
    assert all(np.bincount(labels[s]).tolist() == [5] * 5 for s in sets)
    table = pc.markdown_table(report)
    assert "| finetune_5shot |" in table and "random init" in table
