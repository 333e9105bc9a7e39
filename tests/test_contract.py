"""The input contract: named arrays of any modality, objectives that name their representations,
the step inside the loss, modules initialised (and frozen) from another run, and a registry and
package layout in which one broken piece does not break the rest."""

import json
import os
import shutil
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import ssl_jax
from ssl_jax import objectives, train
from ssl_jax.checkpoint import Checkpoints
from ssl_jax.data import load_dataset
from ssl_jax.errors import UserError
from ssl_jax.evaluation import knn_classify
from tests.configs import REPO, tiny_config

NUM_EXAMPLES, SEQ_LEN, NUM_SAMPLES, NUM_SPEAKERS = 400, 6, 64, 3


@pytest.fixture(scope="module")
def multimodal_npz(tmp_path_factory, digits):
    """Digits with a token sequence, a waveform and a second label per example: the token at
    position 0 and the waveform's frequency follow the digit; ``speaker`` is independent."""
    rng = np.random.default_rng(0)
    labels = digits.train_labels[:NUM_EXAMPLES]
    tokens = rng.integers(12, 30, (NUM_EXAMPLES, SEQ_LEN))
    tokens[:, 0] = 2 + labels
    tokens[:, -2:] = 0  # padding
    t = np.arange(NUM_SAMPLES) / NUM_SAMPLES
    wave = np.sin(2 * np.pi * (2 + labels[:, None]) * t) + 0.1 * rng.normal(size=(NUM_EXAMPLES, 1))
    audio = np.round(0.5 * wave * 32767).astype(np.int16)
    path = tmp_path_factory.mktemp("npz") / "multimodal.npz"
    np.savez(
        path,
        images=digits.train_images[:NUM_EXAMPLES],
        tokens=tokens,
        audio=audio,
        labels=labels,
        speaker=rng.integers(0, NUM_SPEAKERS, NUM_EXAMPLES),
    )
    return str(path)


def multimodal_config(npz_path, **fields):
    config = tiny_config("toy_multimodal")
    config.dataset = f"npz:{npz_path}"
    config.num_steps = 4
    config.checkpoint_every = 4
    for key, value in fields.items():
        train_config_set(config, key, value)
    return config


def train_config_set(config, dotted, value):
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node[part]
    with node.ignore_type():
        node[leaf] = value


@pytest.fixture(scope="module")
def multimodal_run(multimodal_npz, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run") / "multimodal")
    config = multimodal_config(
        multimodal_npz,
        **{"readout.enabled": True, "readout.knn_k": 5, "readout.l2_grid": (1.0, 0.01)},
    )
    readout = train.train(config, workdir)
    return workdir, readout


def test_an_npz_of_three_modalities_arrives_decoded_on_the_mesh(multimodal_npz):
    dataset = load_dataset(f"npz:{multimodal_npz}")
    assert dataset.name == f"npz:{multimodal_npz}"
    kinds = {name: spec.kind for name, spec in dataset.spec.items()}
    assert kinds == {
        "images": "images",
        "tokens": "tokens",
        "audio": "audio",
        "labels": "label",
        "speaker": "label",
    }
    assert dataset.spec["speaker"].num_values == NUM_SPEAKERS
    assert dataset.spec["tokens"].shape == (SEQ_LEN,) and dataset.spec["audio"].dtype == "int16"

    mesh = train.make_mesh(8)
    _, batch = next(dataset.train_batches(32, 0, 0, NamedSharding(mesh, P("data"))))
    stored = {k: v[dataset_batch_indices(dataset)] for k, v in dataset.train.items()}
    assert batch["images"].dtype == np.float32 and batch["audio"].dtype == np.float32
    assert batch["tokens"].dtype == np.int32 and batch["speaker"].dtype == np.int32
    assert batch["audio"].sharding.spec == P("data")
    np.testing.assert_allclose(np.asarray(batch["images"]), stored["images"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(batch["audio"]), stored["audio"] / 32768.0, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(batch["tokens"]), stored["tokens"])


def dataset_batch_indices(dataset):
    from ssl_jax.data.pipeline import batch_indices

    return batch_indices(dataset.num_train_examples, 32, 0, 0)


def test_two_representations_are_read_out_on_every_label(multimodal_run):
    _, readout = multimodal_run
    reps = readout["representations"]
    assert set(reps) == {"image", "audio"}
    for rep in reps.values():
        assert set(rep) == {"labels", "speaker"}
    assert set(reps["image"]["labels"]["knn"]) == {"trained", "random_init", "pixels"}
    # No sample rate in the .npz: no MFCC baseline for its audio.
    assert set(reps["audio"]["labels"]["knn"]) == {"trained", "random_init"}


def test_each_representation_loads_by_name(multimodal_run, multimodal_npz):
    workdir, _ = multimodal_run
    dataset = load_dataset(f"npz:{multimodal_npz}")
    audio = ssl_jax.load_encoder(workdir, name="audio")
    image = ssl_jax.load_encoder(workdir, name="image")
    assert audio.input_name == "audio" and image.input_name == "images"
    assert audio.embed(dataset.test["audio"][:5]).shape == (5, 8)
    assert image.embed(dataset.test["images"][:5]).shape[0] == 5
    assert set(audio.params) == {"audio_encoder"}  # only what the representation reads
    # The readout read these very representations: its kNN accuracies are reproduced from
    # the loaded encoders' embeddings.
    _, readout = multimodal_run
    for encoder in (audio, image):
        train_x = encoder.embed(dataset.train[encoder.input_name])
        test_x = encoder.embed(dataset.test[encoder.input_name])
        for label in ("labels", "speaker"):
            knn = knn_classify(train_x, dataset.train[label], test_x, dataset.test[label], k=5)
            recorded = readout["representations"][encoder.name][label]["knn"]["trained"]
            assert float(knn["test_top1"]) == pytest.approx(recorded, abs=1e-6)
    with pytest.raises(UserError, match="several representations.*audio, image|image, audio"):
        ssl_jax.load_encoder(workdir)
    with pytest.raises(UserError, match="unknown representation 'text'"):
        ssl_jax.load_encoder(workdir, name="text")


def test_the_step_reaches_the_loss(multimodal_run):
    workdir, _ = multimodal_run
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=3)
    raw = checkpoints.restore_raw(4)
    checkpoints.close()
    # update_state recorded the `step` of the last loss call: 3 completed steps before it.
    assert int(np.asarray(raw["objective_state"]["last_step"])) == 3
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        logged = [json.loads(line) for line in f]
    assert [(m["step"], m["step_seen"]) for m in logged] == [
        (s, s - 1) for s in (m["step"] for m in logged)
    ]


def test_init_from_loads_a_module_and_frozen_keeps_it_fixed(
    multimodal_run, multimodal_npz, tmp_path
):
    source, _ = multimodal_run
    checkpoints = Checkpoints(os.path.join(source, "checkpoints"), keep=3)
    before = checkpoints.restore_raw(4)
    checkpoints.close()
    config = multimodal_config(multimodal_npz)
    config.init_from = ml_collections.ConfigDict(
        dict(workdir=source, step=0, modules=("image_encoder",), frozen=True)
    )
    workdir = str(tmp_path / "frozen")
    train.train(config, workdir)
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=3)
    after = checkpoints.restore_raw(4)
    checkpoints.close()
    for key in ("params", "batch_stats"):
        jax.tree.map(
            np.testing.assert_array_equal, after[key]["image_encoder"], before[key]["image_encoder"]
        )
    assert "image_encoder" not in json.dumps(jax.tree_util.keystr(after["opt_state"]))
    leaves = jax.tree_util.tree_leaves_with_path(after["opt_state"])
    assert not any("image_encoder" in jax.tree_util.keystr(path) for path, _ in leaves)
    # The modules that train did move.
    moved = jax.tree.map(
        lambda a, b: bool(np.any(a != b)),
        after["params"]["audio_encoder"],
        before["params"]["audio_encoder"],
    )
    assert any(jax.tree.leaves(moved))


def test_init_from_refuses_a_module_of_another_shape(multimodal_run, multimodal_npz, tmp_path):
    source, _ = multimodal_run
    config = multimodal_config(multimodal_npz)
    config.init_from = ml_collections.ConfigDict(
        dict(workdir=source, step=0, modules=("image_encoder=audio_encoder",), frozen=False)
    )
    with pytest.raises(UserError, match="does not fit this run's 'image_encoder'"):
        train.train(config, str(tmp_path / "mismatch"))


def test_load_encoder_on_a_damaged_checkpoint_is_exact_or_refuses(
    multimodal_run, multimodal_npz, tmp_path
):
    """Zeroes, one at a time, each data file of the checkpoint. Whenever the damage makes the
    whole state unreadable, `load_encoder` either returns exactly the undamaged embeddings (the
    file held none of the encoder's arrays) or refuses with the one-line error — never other
    numbers. Which of the two happens depends on how orbax packs arrays into files, which varies
    with the machine, so the test asserts the property for every file rather than a count."""
    source, _ = multimodal_run
    images = load_dataset(f"npz:{multimodal_npz}").test["images"][:8]
    expected = ssl_jax.load_encoder(source, name="image").embed(images)
    data_files = sorted(
        os.path.relpath(os.path.join(root, name), os.path.join(source, "checkpoints", "4"))
        for root, _, names in os.walk(os.path.join(source, "checkpoints", "4"))
        for name in names
        if os.path.basename(root) == "d"
    )
    assert data_files
    unreadable = 0
    for relative in data_files:
        copy = str(tmp_path / relative.replace(os.sep, "_"))
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("eval"))
        damaged = os.path.join(copy, "checkpoints", "4", relative)
        with open(damaged, "r+b") as f:
            f.write(b"\0" * os.path.getsize(damaged))
        checkpoints = Checkpoints(os.path.join(copy, "checkpoints"), keep=3)
        try:
            checkpoints.restore_raw(4)
            whole_state_readable = True
        except Exception:  # noqa: BLE001 - the damaged file is read
            whole_state_readable = False
        finally:
            checkpoints.close()
        if whole_state_readable:
            continue
        unreadable += 1
        try:
            encoder = ssl_jax.load_encoder(copy, name="image")
        except UserError as err:
            assert "cannot be read for representation 'image'" in str(err)
            continue
        np.testing.assert_array_equal(encoder.embed(images), expected)
    # The damage must have reached the state at least once, or the test checked nothing.
    assert unreadable >= 1


def test_an_objective_that_logs_no_loss_is_refused(tmp_path):
    config = tiny_config("toy_no_loss_metric")
    with pytest.raises(UserError, match="logs no loss metric"):
        train.train(config, str(tmp_path / "run"))


def test_divergence_of_any_group_stops_the_run(tmp_path):
    checkpoints = Checkpoints(str(tmp_path / "checkpoints"), keep=1)
    try:
        train.check_finite(3, {"discriminator/loss": 0.5, "other": 1.0}, checkpoints, "gan")
        with pytest.raises(UserError, match="the generator/loss is nan at step 3"):
            metrics = {"discriminator/loss": 0.5, "generator/loss": float("nan")}
            train.check_finite(3, metrics, checkpoints, "gan")
    finally:
        checkpoints.close()


def test_a_broken_objective_module_breaks_only_its_own_runs(tmp_path, monkeypatch):
    package = tmp_path / "extra"
    package.mkdir()
    (package / "broken.py").write_text("raise RuntimeError('this module is broken')\n")
    monkeypatch.setattr(objectives, "__path__", [*objectives.__path__, str(package)])
    monkeypatch.setattr(objectives, "__name__", objectives.__name__)
    assert "simclr" in objectives.registered_objectives()
    config = tiny_config("simclr")
    config.num_steps = 1
    train.train(config, str(tmp_path / "ok"))  # another objective trains
    config.objective.name = "broken"
    with pytest.raises(UserError, match="cannot import objective module.*this module is broken"):
        objectives.get_factory(config)


def run_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": REPO}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return out.stdout.strip()


def test_light_packages_do_not_import_heavy_ones():
    loaded = run_python(
        "import sys; import ssl_jax.similarity; "
        "print(sorted(m for m in ('orbax.checkpoint', 'sklearn', 'ssl_jax.train', "
        "'ssl_jax.evaluation', 'flax') if m in sys.modules))"
    )
    assert loaded == "[]"
    loaded = run_python(
        "import sys; import ssl_jax.evaluate, ssl_jax.objectives.simclr; "
        "print(sorted(m for m in ('ssl_jax.train',) if m in sys.modules))"
    )
    assert loaded == "[]"
    loaded = run_python(
        "import sys; import ssl_jax.objectives.simclr; "
        "print(sorted(m for m in ('ssl_jax.evaluation', 'sklearn') if m in sys.modules))"
    )
    assert loaded == "[]"
