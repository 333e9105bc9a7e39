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
    assert logged and all(r["effective_rank"] >= 1.0 for r in logged)
    assert all(0.0 < r["embedding_std"] < 1.0 for r in logged)


def test_transfer_pretraining_saw_only_the_pretraining_classes(transfer_run):
    with open(os.path.join(transfer_run, "config.json")) as f:
        dataset = load_dataset(json.load(f)["dataset"])
    assert set(np.unique(dataset.train_labels)) == set(range(5))


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
    assert all(0.0 <= r["mean"] <= 1.0 for r in rows.values())
    # The 5-shot linear and fine-tuned rows used the same support sets.
    labels = class_subset(load_dataset("digits"), range(5, 10)).train_labels
    sets = pc.support_sets(labels, 5, 2, 0)
    assert all(np.bincount(labels[s]).tolist() == [5] * 5 for s in sets)
    table = pc.markdown_table(report)
    assert "| finetune_5shot |" in table and "random init" in table
