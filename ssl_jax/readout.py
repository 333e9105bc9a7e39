"""The end-of-pretraining readout: how well each representation predicts each label.

For every representation the objective names (`ssl_jax.objectives.base.Representation`) and
every label of the dataset (``labels``, ``word``, ``speaker``, …), three feature sets are
compared under the same protocols: the trained representation, the same representation at its
random initialisation (the run's own step-0 parameters), and a baseline computed without
learning from the raw input (pixels for images, pooled MFCCs for audio). The protocols are
those of `ssl_jax.evaluation`: weighted kNN (cosine, k=20, T=0.07 by default) and the L-BFGS
linear probe with its regularisation chosen on a validation split of the training data (never
on the held-out split). A text dataset with word-similarity sets (``lee``) also scores every
representation of ``tokens`` on them, one word at a time.

``readout.json``::

    {"representations": {REP: {LABEL: {"knn": {"trained", "random_init", BASELINE},
                                       "linear": {...}}}},
     "words": {REP: {"trained": {...}, "random_init": {...}}},     # text datasets only
     "settings": {...}}
"""

import functools
import numbers

import jax
import numpy as np

from ssl_jax.data.spec import decode
from ssl_jax.encoder import batched_apply
from ssl_jax.errors import UserError
from ssl_jax.evaluation import knn_classify, linear_probe


def check_readout_config(readout) -> None:
    """Refuses readout settings that would only fail after pretraining."""
    grid = readout.l2_grid
    if not isinstance(grid, (tuple, list)) or not all(
        isinstance(v, numbers.Real) and v > 0 for v in grid
    ):
        raise UserError(
            f"readout.l2_grid must be a tuple of positive λ values, got {grid!r}; "
            "e.g. --config.readout.l2_grid='(1.0, 0.1, 0.01)', or () for the full default grid."
        )


def make_feature_fn(representation, input_spec):
    """Jitted ``(params, batch_stats, stored inputs) -> [N, D]``: decoding and the
    representation in one program, compiled once per batch shape."""

    @jax.jit
    def features(params, batch_stats, stored):
        return representation.fn(params, batch_stats, decode(input_spec, stored))

    return features


def baseline_features(input_spec, stored: np.ndarray):
    """(name, [N, D] features) computed without learning, or None for inputs without one
    (tokens; audio of unknown sample rate)."""
    if input_spec.kind == "images":
        return "pixels", decode(input_spec, stored).reshape(len(stored), -1)
    if input_spec.kind == "audio" and input_spec.sample_rate:
        from ssl_jax.data.audio import mfcc_features

        return "mfcc", mfcc_features(decode(input_spec, stored), input_spec.sample_rate)
    return None


def run_readout(config, dataset, objective, state, initial_state, print_table=True) -> dict:
    """Readout of ``state`` beside ``initial_state`` and the input baseline; returns the dict
    written to ``readout.json`` (empty when there is nothing to read out)."""
    readout = config.readout
    l2_grid = tuple(float(v) for v in readout.l2_grid) or None
    labels = dataset.label_names
    words = getattr(dataset, "evaluate_words", None)
    states = {"trained": state, "random_init": initial_state}
    result = {"representations": {}}
    settings = {}
    for rep_name, rep in objective.representations.items():
        if rep.input not in dataset.spec:
            continue
        spec = dataset.spec[rep.input]
        features_of = make_feature_fn(rep, spec)

        def features(which, split, features_of=features_of, rep=rep):
            run = states[which]
            fn = functools.partial(features_of, run.params, run.batch_stats)
            return batched_apply(fn, getattr(dataset, split)[rep.input], readout.batch_size)

        if labels:
            feature_sets = {w: (features(w, "train"), features(w, "test")) for w in states}
            base = baseline_features(spec, dataset.train[rep.input]) if readout.baseline else None
            if base is not None:
                feature_sets[base[0]] = (
                    base[1],
                    baseline_features(spec, dataset.test[rep.input])[1],
                )
            per_label = {}
            for label in labels:
                scores = {"knn": {}, "linear": {}}
                for which, (train_x, test_x) in feature_sets.items():
                    train_y, test_y = dataset.train[label], dataset.test[label]
                    knn = knn_classify(
                        train_x,
                        train_y,
                        test_x,
                        test_y,
                        k=readout.knn_k,
                        temperature=readout.knn_temperature,
                    )
                    linear = linear_probe(train_x, train_y, test_x, test_y, l2_grid=l2_grid)
                    scores["knn"][which] = float(knn["test_top1"])
                    scores["linear"][which] = float(linear["test_top1"])
                    settings["linear_l2_grid"] = linear["settings"]["l2_grid"]
                per_label[label] = scores
            result["representations"][rep_name] = per_label
        if words is not None and rep.input == "tokens":
            result.setdefault("words", {})[rep_name] = {
                which: words(word_features(features_of, states[which], readout.batch_size))
                for which in states
            }
    if not result["representations"] and "words" not in result:
        if print_table:
            print("readout skipped: the dataset has no labels.")
        return {}
    test_count = len(next(iter(dataset.test.values())))
    result["settings"] = {
        "held_out_examples": int(test_count),
        "train_examples": int(dataset.num_train_examples),
        "knn": {"k": readout.knn_k, "temperature": readout.knn_temperature},
        "linear": "L-BFGS multinomial logistic regression, L2 chosen on a validation split",
        **settings,
    }
    if print_table:
        print(format_table(result))
    return result


def word_features(features_of, run, batch_size):
    """``ids [N] -> [N, D]``: each word alone, as a token sequence of length one."""

    def embed_ids(ids):
        ids = np.asarray(ids, dtype=np.int32)[:, None]
        fn = functools.partial(features_of, run.params, run.batch_stats)
        return batched_apply(fn, ids, batch_size)

    return embed_ids


def format_table(result: dict) -> str:
    rows = []
    for rep_name, per_label in result["representations"].items():
        for label, scores in per_label.items():
            columns = list(scores["knn"])
            rows.append(
                f"{rep_name} → {label:<12}" + "".join(f"{c.replace('_', ' '):>13}" for c in columns)
            )
            for protocol in ("knn", "linear"):
                values = "".join(f"{scores[protocol][c]:>13.4f}" for c in columns)
                rows.append(f"  {protocol:<{len(rep_name) + 13}}{values}")
    for rep_name, by_state in result.get("words", {}).items():
        for which, scores in by_state.items():
            shown = {k: v for k, v in scores.items() if isinstance(v, float)}
            rows.append(
                f"{rep_name} words ({which}): "
                + ", ".join(f"{k} {v:.4f}" for k, v in shown.items())
            )
    return "\n".join(rows)
