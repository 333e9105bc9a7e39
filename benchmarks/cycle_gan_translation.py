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
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from ssl_jax.checkpoint import Checkpoints
from ssl_jax.config import apply_overrides, load_config
from ssl_jax.data import load_dataset
from ssl_jax.data.spec import decoded_spec, sample_batch
from ssl_jax.objectives import make_objective
from ssl_jax.train import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flat(images):
    return np.asarray(images).reshape(len(images), -1)


def domain_classifier(train_a, train_b):
    """Logistic regression on pixels telling a handwritten digit (0) from a typeset one (1)."""
    x = flat(np.concatenate([train_a, train_b]))
    y = np.concatenate([np.zeros(len(train_a)), np.ones(len(train_b))])
    return LogisticRegression(C=0.1, max_iter=2000).fit(x, y)


class HeldOut:
    """The held-out images of both domains, the classifiers fitted on the training ones, and
    what the classifiers make of the untranslated held-out images: computed once."""

    def __init__(self, data):
        train_a, train_b = data.decoded("train", "images"), data.decoded("train", "images_b")
        self.a, self.b = data.decoded("test", "images"), data.decoded("test", "images_b")
        self.y_a, self.y_b = data.test["labels"], data.test["labels_b"]
        self.by_b = KNeighborsClassifier(5).fit(flat(train_b), data.train["labels_b"])
        self.by_a = KNeighborsClassifier(5).fit(flat(train_a), data.train["labels"])
        self.domains = domain_classifier(train_a, train_b)
        self.untranslated = {
            "ab": self.by_b.score(flat(self.a), self.y_a),
            "ba": self.by_a.score(flat(self.b), self.y_b),
            "a_looks_b": self.looks_b(self.a),
            "b_looks_a": 1 - self.looks_b(self.b),
        }

    def looks_b(self, images) -> float:
        """The fraction of ``images`` the domain classifier takes for typeset (B)."""
        return float(self.domains.predict(flat(images)).mean())

    def scores(self, objective, params) -> dict:
        pictures = jax.jit(objective.pictures)(
            params, {}, self.a, jax.random.key(0), images_b=self.b
        )
        to_b, back_to_a = np.asarray(pictures["translations_ab"][1:])
        to_a = np.asarray(pictures["translations_ba"][1])
        return {
            "ab": float(self.by_b.score(flat(to_b), self.y_a)),
            "ba": float(self.by_a.score(flat(to_a), self.y_b)),
            "cycle": float(np.mean(np.abs(back_to_a - self.a))),
            # How often the domain classifier takes a translation for its target domain.
            "ab_looks_b": self.looks_b(to_b),
            "ba_looks_a": 1 - self.looks_b(to_a),
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
    held_out = HeldOut(data)
    print(
        "| generators | steps | wall | G(a) by B | F(b) by A | G(a) taken for B | "
        "F(b) taken for A | |F(G(a)) − a| per pixel | "
        "kNN generator_ab → labels | kNN generator_ba → labels_b |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    for name, params, steps in (("initial", initial, 0), ("trained", trained, config.num_steps)):
        s = held_out.scores(objective, params)
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
    u = held_out.untranslated
    print(
        f"untranslated: B's classifier on handwritten digits {u['ab']:.3f}, "
        f"A's on typeset digits {u['ba']:.3f}; the domain classifier takes "
        f"{u['a_looks_b']:.3f} of the held-out handwritten digits for typeset and "
        f"{u['b_looks_a']:.3f} of the typeset ones for handwritten"
    )


if __name__ == "__main__":
    main()
