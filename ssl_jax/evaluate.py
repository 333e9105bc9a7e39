"""Evaluate a trained encoder: ``python -m ssl_jax.evaluate --checkpoint DIR --protocol P``.

    python -m ssl_jax.evaluate --checkpoint runs/simclr_mnist --protocol linear
    python -m ssl_jax.evaluate --checkpoint random:experiments/simclr_mnist.py --protocol knn

Protocols: linear (L-BFGS, L2 chosen on validation), linear_sgd, knn, finetune, fewshot
(ridge and L-BFGS), diagnostics (collapse measures and PCA / t-SNE plots), disentanglement
(MIG, DCI, β-VAE, FactorVAE on generated shapes). Every result is printed beside the same
protocol on a randomly initialised encoder of the same config (the run's own step-0
parameters), and written with every setting to ``DIR/eval/<protocol>.json`` (``--output``
for ``random:`` checkpoints). Features of a layer are computed once (batch norm in inference
mode) and cached in ``DIR/eval/features/``.
"""

import argparse
import functools
import hashlib
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import config as config_lib
from ssl_jax.data import load_dataset
from ssl_jax.data.datasets import Dataset
from ssl_jax.encoder import Encoder, load_encoder
from ssl_jax.errors import UserError, close_matches, unknown_name

PROTOCOLS = (
    "linear",
    "linear_sgd",
    "knn",
    "finetune",
    "fewshot",
    "diagnostics",
    "disentanglement",
)
FEATURE_PROTOCOLS = ("linear", "knn", "fewshot", "diagnostics")
ALIGNMENT_IMAGES = 1000  # test images whose two augmented views give the alignment


def random_encoder(config, input_spec, name=None, seed=None) -> Encoder:
    """Representation ``name`` of the config's objective at the initialisation a run with this
    config starts from (``input_spec``: the stored element spec of the run's data)."""
    from ssl_jax.data.spec import decoded_spec, sample_batch
    from ssl_jax.encoder import choose_representation
    from ssl_jax.state import build_objective, init_state

    objective, optimizers, _ = build_objective(config, input_spec)
    name = choose_representation(objective.representations, name, "this config")
    representation = objective.representations[name]
    seed = config.seed if seed is None else seed
    sample = sample_batch(decoded_spec(input_spec))
    state = jax.jit(functools.partial(init_state, objective, optimizers, seed=seed))(sample)
    params = {m: state.params[m] for m in representation.modules}
    stats = {m: state.batch_stats[m] for m in representation.modules if m in state.batch_stats}
    return Encoder(
        representation,
        jax.device_get(params),
        jax.device_get(stats),
        input_spec[representation.input],
        name=name,
        input_name=representation.input,
        run_spec=input_spec,
        config=config,
        step=0,
    )


def evaluation_dataset(name: str, config) -> Dataset:
    """Dataset ``name`` in memory, capped as the run's readout is (``config.readout``).

    A TFDS dataset is read with the run's ``data`` settings (e.g. its image size).
    """
    dataset = load_dataset(name, config.data.to_dict())
    readout = config.readout
    return dataset.readout_data(readout.max_train_examples, readout.max_heldout_examples)


def open_checkpoint(spec: str, dataset_name: str | None, name: str | None = None):
    """(encoder, random-init baseline, dataset, output dir) for ``--checkpoint``."""
    if spec.startswith("random:"):
        config = config_lib.load_config(spec[len("random:") :])
        dataset = evaluation_dataset(dataset_name or config.dataset, config)
        encoder = random_encoder(config, dataset.spec, name)
        return encoder, None, dataset, None
    encoder = load_encoder(spec, name=name)
    dataset = evaluation_dataset(dataset_name or encoder.config.dataset, encoder.config)
    have = dataset.spec.get(encoder.input_name)
    if have is None or tuple(have.shape) != encoder.image_shape:
        shape = "nothing" if have is None else tuple(have.shape)
        raise UserError(
            f"dataset {dataset.name!r} has {encoder.input_name} {shape} but the encoder takes "
            f"{encoder.image_shape}; pick a dataset of that shape with --dataset."
        )
    baseline = random_encoder(encoder.config, encoder.run_spec, encoder.name)
    workdir = spec if os.path.exists(os.path.join(spec, "config.json")) else os.path.dirname(spec)
    return encoder, baseline, dataset, os.path.join(workdir, "eval")


def layer_features(encoder: Encoder, images, layer: str | None) -> np.ndarray:
    """[N, D] features of ``layer`` (default: the encoder's output); maps are flattened."""
    if layer is None:
        return encoder.embed(images)
    available = list(encoder.layers(images[:2]))
    if layer not in available:
        raise unknown_name("layer", layer, available)
    features = encoder.layers(images)[layer]
    return features.reshape(len(features), -1)


def cached_features(encoder, dataset, layer, cache_dir, tag):
    """Train and test features of ``layer``, from ``cache_dir`` when computed before."""
    path = None
    if cache_dir:
        ident = f"{tag}|{dataset.name}|{encoder.name}|{layer}|{encoder.step}"
        key = hashlib.sha1(ident.encode()).hexdigest()[:12]
        path = os.path.join(cache_dir, f"{tag}_{layer or 'output'}_{key}.npz")
        if os.path.exists(path):
            cached = np.load(path)
            return cached["train"], cached["test"]
    train_x = layer_features(encoder, dataset.train[encoder.input_name], layer)
    test_x = layer_features(encoder, dataset.test[encoder.input_name], layer)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        np.savez(path, train=train_x, test=test_x)
    return train_x, test_x


def fewshot_both(train_x, train_y, test_x, test_y, seed, **options) -> dict:
    """Few-shot by closed-form ridge and by the L-BFGS probe, same draws, side by side."""
    from ssl_jax import evaluation

    by_method = {
        method: evaluation.fewshot(
            train_x, train_y, test_x, test_y, seed=seed, method=method, **options
        )
        for method in ("ridge", "lbfgs")
    }
    # Top-level scalars are the printed table's rows: mean accuracy per method and k.
    rows = {
        f"{method}_{k}shot_mean": v["mean"]
        for method, result in by_method.items()
        for k, v in result["test_top1_by_shots"].items()
    }
    return {"protocol": "fewshot", **rows, **by_method}


@functools.partial(jax.jit, static_argnums=2)
def _two_views(images, key, config):
    """Jitted `augment.make_views`; ``config`` is a (hashable) FrozenConfigDict, so the trained
    encoder and its random-init baseline share one compiled program."""
    from ssl_jax import augment

    return augment.make_views(images, key, config)


def augmented_pair(encoder, images, seed):
    """Embeddings of two augmented views of ``images`` (the run's aug config, two global views)."""
    import ml_collections

    from ssl_jax import augment
    from ssl_jax.data.pipeline import to_float_images

    config = encoder.config.get("aug") if encoder.config is not None else None
    config = augment.default_config() if config is None else config.copy_and_resolve_references()
    config.num_global, config.num_local = 2, 0
    config.global_size = None  # views the size the encoder takes
    views = _two_views(
        to_float_images(jnp.asarray(images)),
        jax.random.PRNGKey(seed),
        ml_collections.FrozenConfigDict(config),
    )
    return [encoder.embed(np.asarray(v)) for v in views]


def diagnostics(encoder, dataset, test_x, plot_dir, prefix, seed) -> dict:
    """Collapse diagnostics of the test features, alignment of two views, and PCA / t-SNE PNGs."""
    from ssl_jax import evaluation

    result = evaluation.collapse_diagnostics(jnp.asarray(test_x))
    images = dataset.test_images[:ALIGNMENT_IMAGES]
    z1, z2 = augmented_pair(encoder, images, seed)
    result["alignment_output"] = float(evaluation.alignment(jnp.asarray(z1), jnp.asarray(z2)))
    result["settings"] = {
        "split": "test",
        "effective_rank": "RankMe, uncentred (effective_rank) and centred (effective_rank_centred)",
        "uniformity_t": 2.0,
        "alignment": (
            f"encoder output of two augmented views of the first {len(images)} test images "
            "(the run's aug config, two global views), alpha = 2"
        ),
    }
    if dataset.test_labels is not None and plot_dir:
        plots = evaluation.plot_projections(
            test_x, dataset.test_labels, plot_dir, prefix=prefix, seed=seed
        )
        result["plots"] = plots["paths"]
        result["settings"]["plots"] = plots["settings"]
    return result


def disentanglement(encoder, seed, options) -> dict:
    """The four disentanglement scores of the encoder's output on generated shapes.

    Images are rendered at 64×64 by `Shapes` and resized (area) to the encoder's input, with the
    single channel repeated when it takes colour, so any image encoder can be scored.
    """
    from ssl_jax.data.shapes import Shapes
    from ssl_jax.evaluation.disentanglement import all_scores

    height, width, channels = encoder.image_shape

    def representation_fn(observations):
        x = jnp.asarray(observations, jnp.float32) / 255.0
        x = jax.image.resize(x, (len(x), height, width, 1), "linear", antialias=True)
        x = jnp.clip(jnp.repeat(x, channels, axis=-1), 0.0, 1.0)
        return encoder.embed(np.asarray(x))

    shapes = Shapes(**options.pop("shapes", {}))
    result = all_scores(representation_fn, shapes, seed, **options)
    result["settings"]["images"] = (
        f"rendered at {shapes.image_size}x{shapes.image_size}, resized (linear, antialiased) to "
        f"{height}x{width}, channel repeated x{channels}; codes = encoder output"
    )
    return {"protocol": "disentanglement", **result}


def run_protocol(
    protocol, encoder, dataset, layer, cache_dir, tag, seed, options=None, label="labels"
) -> dict:
    from ssl_jax import evaluation

    options = dict(options or {})
    if protocol == "disentanglement":
        if layer is not None:
            raise UserError("--layer is not used by the disentanglement protocol (codes = output).")
        return disentanglement(encoder, seed, options)
    needs_labels = protocol != "diagnostics"
    if needs_labels and label not in dataset.train:
        raise UserError(
            f"protocol {protocol!r} needs labels; dataset {dataset.name!r} has no {label!r} "
            f"(its labels: {', '.join(dataset.label_names) or 'none'}; choose with --label)."
        )
    train_y, test_y = dataset.train.get(label), dataset.test.get(label)
    if protocol in FEATURE_PROTOCOLS:
        train_x, test_x = cached_features(encoder, dataset, layer, cache_dir, tag)
        args = (train_x, train_y, test_x, test_y)
        if protocol == "linear":
            return evaluation.linear_probe(*args, seed=seed, **options)
        if protocol == "knn":
            return evaluation.knn_sweep(*args, **options)
        if protocol == "fewshot":
            return fewshot_both(*args, seed=seed, **options)
        plot_dir = os.path.dirname(cache_dir) if cache_dir else None
        prefix = f"diagnostics_{tag}_{layer or 'output'}"
        return diagnostics(encoder, dataset, test_x, plot_dir, prefix, seed)
    if layer is not None:
        raise UserError(
            f"--layer applies to feature protocols {FEATURE_PROTOCOLS}, not {protocol!r}."
        )
    if encoder.module is None or encoder.input_name != "images":
        raise UserError(
            f"protocol {protocol!r} trains an image encoder module; representation "
            f"{encoder.name!r} is not one (use linear, knn or fewshot)."
        )
    images = (dataset.train_images, train_y, dataset.test_images, test_y)
    if protocol == "linear_sgd":
        return evaluation.linear_probe_sgd(encoder, *images, seed=seed, **options)
    return evaluation.finetune(encoder, *images, seed=seed, **options)


def protocol_options(protocol: str) -> dict[str, object]:
    """The ``--set`` keywords ``protocol`` takes, with their defaults: the keyword-only
    parameters of the function it runs (``seed`` comes from ``--seed``)."""
    import inspect

    from ssl_jax import evaluation
    from ssl_jax.evaluation.disentanglement import all_scores

    functions = {
        "linear": evaluation.linear_probe,
        "linear_sgd": evaluation.linear_probe_sgd,
        "knn": evaluation.knn_sweep,
        "finetune": evaluation.finetune,
        "fewshot": evaluation.fewshot,
        "disentanglement": all_scores,
    }
    if protocol not in functions:
        return {}
    parameters = inspect.signature(functions[protocol]).parameters.values()
    taken = {
        p.name: p.default
        for p in parameters
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("seed", "method")
    }
    if protocol == "disentanglement":
        taken["shapes"] = {}  # the generated dataset's settings (ssl_jax.data.shapes.Shapes)
    return taken


def check_options(protocol: str, options: dict) -> None:
    """Refuses ``--set`` keys that ``protocol`` does not take, before anything is loaded."""
    taken = protocol_options(protocol)
    for key in options:
        if not taken:
            raise UserError(f"--set {key}: protocol {protocol!r} takes no --set options.")
        if key not in taken:
            raise UserError(
                f"--set {key}: protocol {protocol!r} has no option {key!r}."
                f"{close_matches(key, taken)} Its options: {', '.join(sorted(taken))}."
            )


def to_json(value):
    """Converts NumPy / JAX scalars and arrays inside ``value`` to plain Python."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array):
        return np.asarray(value).tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def headline(result: dict) -> dict:
    """The scalar results worth a table row: top-level numbers of a protocol's output."""
    return {
        k: v for k, v in result.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def evaluate(
    checkpoint,
    protocol,
    layer=None,
    dataset_name=None,
    output=None,
    seed=0,
    options=None,
    representation=None,
    label=None,
) -> dict:
    """Runs ``protocol`` on the checkpoint and its random-init baseline; writes and prints it.

    ``options`` are keyword arguments of the protocol's function (e.g. ``l2_grid``, ``steps``);
    they are recorded in the report.
    """
    if protocol not in PROTOCOLS:
        raise unknown_name("protocol", protocol, PROTOCOLS)
    check_options(protocol, options or {})
    encoder, baseline, dataset, eval_dir = open_checkpoint(checkpoint, dataset_name, representation)
    label = label or ("labels" if "labels" in dataset.spec else next(iter(dataset.label_names), ""))
    eval_dir = output or eval_dir or os.path.join("runs", "eval_random")
    cache_dir = os.path.join(eval_dir, "features")
    results = {
        "trained" if baseline else "random_init": run_protocol(
            protocol,
            encoder,
            dataset,
            layer,
            cache_dir,
            "trained" if baseline else "random",
            seed,
            options,
            label,
        )
    }
    if baseline is not None:
        results["random_init"] = run_protocol(
            protocol, baseline, dataset, layer, cache_dir, "random", seed, options, label
        )
    report = {
        "protocol": protocol,
        "checkpoint": checkpoint,
        "step": encoder.step,
        "representation": encoder.name,
        "label": label,
        "layer": layer or "output",
        "dataset": repr(dataset),
        "seed": seed,
        "options": to_json(options or {}),
        "splits": {
            "train": dataset.num_train_examples,
            "test": len(dataset.test[encoder.input_name]),
            "test_split": "the dataset's fixed held-out split; no choice is made on it",
        },
        "results": to_json(results),
    }
    os.makedirs(eval_dir, exist_ok=True)
    with open(os.path.join(eval_dir, f"{protocol}.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(format_report(report))
    return report


def format_report(report: dict) -> str:
    rows = {name: headline(result) for name, result in report["results"].items()}
    keys = sorted({k for row in rows.values() for k in row})
    names = list(rows)
    lines = [f"{report['protocol']} on {report['dataset']}, layer {report['layer']}"]
    lines.append(f"{'':<28}" + "".join(f"{n:>14}" for n in names))
    for key in keys:
        cells = "".join(f"{rows[n][key]:>14.4f}" if key in rows[n] else f"{'-':>14}" for n in names)
        lines.append(f"{key:<28}{cells}")
    return "\n".join(lines)


def parse_options(pairs) -> dict:
    """``["steps=2000", "lr=0.1"]`` → ``{"steps": 2000, "lr": 0.1}``; non-JSON values stay text."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UserError(f"--set {pair!r}: write KEY=VALUE, e.g. --set steps=2000.")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ssl_jax.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--checkpoint", required=True, help="run workdir, checkpoints dir, or random:CONFIG"
    )
    parser.add_argument("--protocol", required=True, help=" | ".join(PROTOCOLS))
    parser.add_argument("--layer", help="a named layer of the encoder (default: its output)")
    parser.add_argument("--dataset", help="dataset name (default: the run's)")
    parser.add_argument(
        "--representation", help="which representation of the objective (default: encoder)"
    )
    parser.add_argument("--label", help="which label to predict (default: labels)")
    parser.add_argument("--output", help="directory for the results (default: DIR/eval)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword of the protocol's function, VALUE as JSON (e.g. steps=2000, "
        "l2_grid=[1,0.01], weight_decay=0.0005)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        options = parse_options(args.set)
        evaluate(
            args.checkpoint,
            args.protocol,
            args.layer,
            args.dataset,
            args.output,
            args.seed,
            options,
            args.representation,
            args.label,
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
