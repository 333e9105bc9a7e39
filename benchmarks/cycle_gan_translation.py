"""How well CycleGAN's translations keep the digit on ``digit_domains`` (docs/adversarial.md).

    python benchmarks/cycle_gan_translation.py [--set num_steps=2000 seed=1] [--workdir DIR]

Trains experiments/cycle_gan_digits.py as ``python -m ssl_jax.train`` would (readout
included), then scores the final generators on the 1,000 held-out examples: a 5-nearest-
neighbour pixel classifier fitted on the 4,000 training typeset digits (domain B) labels G's
translations of the held-out handwritten digits ("G(a) by B"), one fitted on the training
handwritten digits labels F's translations of the held-out typeset digits ("F(b) by A"),
beside what the same classifiers make of the untranslated images and of the generators at
their initialisation; how often a logistic regression on pixels that tells the training
handwritten digits from the training typeset ones takes G(a) for typeset ("G(a) taken for
B") and F(b) for handwritten; and the mean absolute cycle error |F(G(a)) − a| per pixel.
Prints a markdown row for each.
"""

import argparse
import os
import tempfile
import time

import jax
import numpy as np

from ssl_jax.checkpoint import Checkpoints
from ssl_jax.config import apply_overrides, load_config
from ssl_jax.data import load_dataset
from ssl_jax.data.spec import decoded_spec, sample_batch
from ssl_jax.objectives import make_objective
from ssl_jax.train import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def knn_accuracy(train_x, train_y, test_x, test_y) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    flat = [x.reshape(len(x), -1) for x in (train_x, test_x)]
    return float(KNeighborsClassifier(5).fit(flat[0], train_y).score(flat[1], test_y))


def domain_classifier(train_a, train_b):
    """Logistic regression on pixels telling a handwritten digit (0) from a typeset one (1)."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([train_a, train_b]).reshape(len(train_a) + len(train_b), -1)
    y = np.concatenate([np.zeros(len(train_a)), np.ones(len(train_b))])
    return LogisticRegression(C=0.1, max_iter=2000).fit(x, y)


def scores(objective, params, data, domains) -> dict:
    a, b = data.decoded("test", "images"), data.decoded("test", "images_b")
    train_a, train_b = data.decoded("train", "images"), data.decoded("train", "images_b")
    y_a, y_b = data.test["labels"], data.test["labels_b"]
    pictures = jax.jit(objective.pictures)(params, {}, a, jax.random.key(0), images_b=b)
    to_b, back_to_a = np.asarray(pictures["translations_ab"][1:])
    to_a = np.asarray(pictures["translations_ba"][1])
    return {
        "ab": knn_accuracy(train_b, data.train["labels_b"], to_b, y_a),
        "ba": knn_accuracy(train_a, data.train["labels"], to_a, y_b),
        "ab_untranslated": knn_accuracy(train_b, data.train["labels_b"], a, y_a),
        "ba_untranslated": knn_accuracy(train_a, data.train["labels"], b, y_b),
        "cycle": float(np.mean(np.abs(back_to_a - a))),
        # How often the domain classifier takes a translation for its target domain.
        "ab_looks_b": float(domains.predict(to_b.reshape(len(to_b), -1)).mean()),
        "ba_looks_a": float(1 - domains.predict(to_a.reshape(len(to_a), -1)).mean()),
        "a_looks_b": float(domains.predict(a.reshape(len(a), -1)).mean()),
        "b_looks_a": float(1 - domains.predict(b.reshape(len(b), -1)).mean()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", nargs="*", default=[], help="config overrides")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="cycle_gan_")
    config = load_config(os.path.join(REPO, "experiments", "cycle_gan_digits.py"))
    apply_overrides(config, args.set)
    start = time.perf_counter()
    readout = train(config, workdir)["representations"]
    wall = time.perf_counter() - start
    data = load_dataset(config.dataset)
    objective = make_objective(config, data.spec)
    init_key = jax.random.split(jax.random.PRNGKey(config.seed))[0]  # the trainer's (state.py)
    initial = objective.init(init_key, sample_batch(decoded_spec(data.spec)))[0]
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=1, read_only=True)
    modules = tuple(initial)
    trained = checkpoints.restore_modules(checkpoints.latest_step(), modules)["params"]
    knn_ab = readout["generator_ab"]["labels"]["knn"]
    knn_ba = readout["generator_ba"]["labels_b"]["knn"]
    domains = domain_classifier(data.decoded("train", "images"), data.decoded("train", "images_b"))
    print(
        "| generators | steps | wall | G(a) by B | F(b) by A | G(a) taken for B | "
        "F(b) taken for A | |F(G(a)) − a| per pixel | "
        "kNN generator_ab → labels | kNN generator_ba → labels_b |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    for name, params, steps in (("initial", initial, 0), ("trained", trained, config.num_steps)):
        s = scores(objective, params, data, domains)
        knn = (
            (knn_ab["random_init"], knn_ba["random_init"])
            if steps == 0
            else (knn_ab["trained"], knn_ba["trained"])
        )
        print(
            f"| {name} | {steps} | {wall / 60 if steps else 0:.1f} min | {s['ab']:.3f} | "
            f"{s['ba']:.3f} | {s['ab_looks_b']:.3f} | {s['ba_looks_a']:.3f} | "
            f"{s['cycle']:.3f} | {knn[0]:.3f} | {knn[1]:.3f} |"
        )
    print(
        f"untranslated: B's classifier on handwritten digits {s['ab_untranslated']:.3f}, "
        f"A's on typeset digits {s['ba_untranslated']:.3f}; the domain classifier takes "
        f"{s['a_looks_b']:.3f} of the held-out handwritten digits for typeset and "
        f"{s['b_looks_a']:.3f} of the typeset ones for handwritten"
    )


if __name__ == "__main__":
    main()
