"""A command line that switches anything: a model or objective family by its name, a resume
that extends a run or changes what does not alter its past, progress off a terminal."""

import json
import os
import shutil
from pathlib import Path

import ml_collections
import pytest

from ssl_jax import config as config_lib
from ssl_jax import logs, objectives, train
from ssl_jax.errors import UserError
from ssl_jax.models import ENCODERS, build_encoder
from ssl_jax.objectives import autoencoder
from tests.configs import REPO, tiny_config
from tests.test_cli_and_checkpoints import error_line, final_params, write_config

# --- switching a family by name ------------------------------------------------------------


@pytest.mark.parametrize("order", ["name_first", "name_last"])
def test_model_name_switch_brings_the_models_defaults_then_the_other_overrides(order):
    config = tiny_config()  # small_cnn
    overrides = ["model.name=vit_tiny", "model.patch_size=4"]
    notes = config_lib.apply_overrides(config, overrides[:: 1 if order == "name_first" else -1])
    assert config.model.to_dict() == {
        "name": "vit_tiny",
        "patch_size": 4,
        "mlp_ratio": 4.0,
        "pool": "cls",
        "position": "learned",
    }
    assert notes == [
        "config: model.name 'small_cnn' → 'vit_tiny': vit_tiny's defaults; dropped "
        "convs_per_stage, widths (not vit_tiny settings); reset pool='cls'."
    ]


def test_objective_switch_on_the_simclr_config_gives_the_autoencoder_its_fields():
    config = config_lib.load_config(os.path.join(REPO, "experiments", "simclr_mnist.py"))
    notes = config_lib.apply_overrides(
        config, ["objective.code_dim=16", "objective.name=autoencoder"]
    )
    assert config.objective.to_dict() == {
        **autoencoder.DEFAULTS,  # the denoising and sparse fields at their "none"
        "name": "autoencoder",
        "code_dim": 16,
        "decoder_hidden_dims": (512,),
        "reconstruction": "bernoulli",
    }
    assert "dropped projector, temperature (not autoencoder settings)" in notes[0]


def test_a_field_of_the_old_family_is_unknown_after_the_switch():
    config = tiny_config()
    with pytest.raises(UserError, match="model has no field 'widths'"):
        config_lib.apply_overrides(config, ["model.name=resnet18", "model.widths=(8,)"])
    with pytest.raises(UserError, match="unknown model 'vit_tinyy'. Did you mean 'vit_tiny'"):
        config_lib.apply_overrides(tiny_config(), ["model.name=vit_tinyy"])
    with pytest.raises(UserError, match="unknown objective 'simclrr'. Did you mean 'simclr'"):
        config_lib.apply_overrides(tiny_config(), ["objective.name=simclrr"])


def test_switching_to_the_same_name_changes_nothing():
    config = tiny_config()
    assert config_lib.apply_overrides(config, ["model.name=small_cnn"]) == []
    assert config.model.widths == (8, 16)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_every_models_defaults_build_it(name):
    block = ml_collections.ConfigDict(config_lib.block_defaults("model", name))
    assert build_encoder(block) is not None


def test_switching_a_config_without_views_to_a_view_objective_adds_default_views():
    config = config_lib.load_config(os.path.join(REPO, "experiments", "autoencoder_mnist.py"))
    assert "aug" not in config
    notes = config_lib.apply_overrides(config, ["objective.name=simclr", "aug.flip_prob=0.0"])
    assert "added the default aug block" in notes[0]
    assert config.aug.flip_prob == 0.0 and config.aug.num_global == 2


@pytest.mark.parametrize("name", objectives.registered_objectives())
def test_every_objective_of_the_package_has_defaults(name):
    defaults = config_lib.objective_defaults(name)
    assert isinstance(defaults, dict) and "name" not in defaults  # {}: nothing to set


def test_an_objective_switch_on_the_command_line_trains(tmp_path, capsys):
    config = write_config(tmp_path, num_steps=2)
    argv = ["--config", config, "--workdir", str(tmp_path / "run")]
    # The autoencoder of tiny_config("autoencoder"), reached from the SimCLR config.
    argv += ["--config.objective.name=autoencoder", "--config.objective.code_dim=8"]
    argv += ["--config.objective.decoder_hidden_dims=(32,)"]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "objective.name 'simclr' → 'autoencoder'" in out
    assert "objective: autoencoder; starting at step 0/2" in out
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["objective"] == {
            **autoencoder.DEFAULTS,
            "name": "autoencoder",
            "code_dim": 8,
            "decoder_hidden_dims": [32],
            "reconstruction": "bernoulli",
        }


# --- progress off a terminal ------------------------------------------------------------------


def test_progress_lines_off_a_terminal_show_step_total_rate_and_eta(tmp_path, capsys, monkeypatch):
    clock = iter([0.0, 30.0, 40.0, 50.0])  # start; step 1 after 30 s of compilation; +10 s
    monkeypatch.setattr(logs.time, "perf_counter", lambda: next(clock))
    log = logs.MetricsLog(str(tmp_path), start_step=0, total_steps=101)
    assert not log._interactive  # pytest captures stderr, as SLURM and nohup redirect it
    log.write(1, {"loss": 2.0}, steps_done=1)
    log.write(11, {"loss": 1.5}, steps_done=10)
    log.write(21, {"loss": 1.0}, steps_done=10)
    log.close()
    assert capsys.readouterr().out.splitlines() == [
        "step 1/101 (1%): loss 2.0000, compile and first step 30.0s",
        "step 11/101 (11%): loss 1.5000, 1.00 steps/s, ETA 1m 30s",
        "step 21/101 (21%): loss 1.0000, 1.00 steps/s, ETA 1m 20s",
    ]


def test_durations_read_at_a_glance():
    assert [logs.format_duration(s) for s in (9.6, 249, 11_100)] == ["10s", "4m 09s", "3h 05m"]


# --- what a resume may change -----------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run (the suite's default tiny config: 6 steps, checkpoints 3 and 6)."""
    directory = tmp_path_factory.mktemp("finished")
    config = write_config(directory)
    workdir = str(directory / "run")
    assert train.main(["--config", config, "--workdir", workdir]) == 0
    return config, workdir


def test_resume_extends_a_finished_run_with_a_lower_lr_and_records_it(finished, tmp_path, capsys):
    config, original = finished
    workdir = str(tmp_path / "run")
    shutil.copytree(original, workdir)
    capsys.readouterr()
    argv = ["--config", config, "--workdir", workdir, "--resume"]
    argv += ["--config.num_steps=8", "--config.optim.lr=0.0005", "--config.log_every=1"]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "--resume: from step 6, log_every 2 → 1, num_steps 6 → 8, optim.lr 0.001 → 0.0005 "
        "(recorded in config_changes.jsonl)"
    ) in out
    assert "starting at step 6/8" in out
    assert final_params(workdir)[2] == 8
    with open(os.path.join(workdir, "config_changes.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert records == [
        {
            "step": 6,
            "changes": {"log_every": [2, 1], "num_steps": [6, 8], "optim.lr": [0.001, 0.0005]},
        }
    ]
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["num_steps"] == 8
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == [1, 2, 3, 4, 6, 7, 8]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("--config.seed=1", "differs in seed); resume with the same config"),
        ("--config.optim.weight_decay=0.1", "differs in optim.weight_decay)"),
        ("--config.num_steps=4", "num_steps 4 is below step 6 of the checkpoint"),
    ],
)
def test_resume_refuses_changes_that_rewrite_the_past(override, expected, finished, capsys):
    config, workdir = finished
    saved = [Path(workdir, name) for name in ("config.json", "metrics.jsonl")]
    before = [path.read_text() for path in saved]
    err = error_line(capsys, ["--config", config, "--workdir", workdir, "--resume", override])
    assert expected in err
    assert [path.read_text() for path in saved] == before
    assert not os.path.exists(os.path.join(workdir, "config_changes.jsonl"))


def test_a_run_saved_before_an_optimizer_field_existed_reads_as_its_default(tmp_path):
    """``optim.decay`` came after some runs were saved: their config.json lacks it, in
    ``optim`` and in every ``optim_groups`` block, and they ran with the cosine decay."""
    config = config_lib.load_config(os.path.join(REPO, "experiments", "gan_mnist.py"))
    saved = config_lib.to_dict(config)
    for block in (saved["optim"], *saved["optim_groups"].values()):
        assert block.pop("decay") == "cosine"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    restored = config_lib.read_saved_config(str(path))
    assert config_lib.config_differences(restored, config_lib.to_dict(config)) == []
    config.optim_groups.generator.decay = "linear"  # a real change is still seen
    assert config_lib.config_differences(restored, config_lib.to_dict(config)) == [
        "optim_groups.generator.decay"
    ]
