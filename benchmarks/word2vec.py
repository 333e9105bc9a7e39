"""ssl_jax's word2vec against gensim's Word2Vec on the Lee corpus: quality and words/s.

Both train on the training text of the ``lee`` dataset (``lee_background.cor``, tokenized by
`ssl_jax.data.text.tokenize`) with the same dimension, window, negatives, subsampling, min count
and epochs, and both are scored by the same `ssl_jax.evaluation.words.evaluate`: WordSim-353
and SimLex-999 Spearman ρ and 3CosAdd analogy accuracy. gensim sees whole documents (and drops
out-of-vocabulary words itself); ssl_jax sees the dataset's windows of 64 in-vocabulary tokens
(``--window-length 0``: whole documents, 0-padded to the longest).

ssl_jax trains with the settings of experiments/word2vec_lee.py (skip-gram) and
experiments/word2vec_lee_cbow.py (CBOW): plain SGD on the sum of the pairs' losses, α 0.035 on
4 windows a step (CBOW 0.0125 on 16) decayed linearly to 0.4 % of α (``--set`` overrides any
of them), in one jitted ``lax.scan`` per epoch over the objective's ``loss``, the same step the
trainer takes. words/s counts the in-vocabulary training words (49,332 a pass) × epochs over
the training wall time; for ssl_jax also without the first epoch, which includes compilation.

python benchmarks/word2vec.py                       # skip-gram and CBOW, seeds 0 … 9
python benchmarks/word2vec.py --modes cbow --seeds 0
python benchmarks/word2vec.py --set optim.lr=0.025 --set objective.noise_per_pair=False
python benchmarks/word2vec.py --modes skipgram --window-length 0 --set batch_size=6
    # ssl_jax on whole documents (one example each, 0-padded to 552), ~1,000 words a step
"""

import argparse
import math
import os
import time

import jax
import numpy as np
import optax

from ssl_jax.config import apply_overrides, load_config
from ssl_jax.data.spec import decoded_spec
from ssl_jax.data.text import load_lee, read_documents
from ssl_jax.evaluation.words import evaluate
from ssl_jax.objectives.word2vec import make
from ssl_jax.optim import make_optimizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ("wordsim353_spearman", "simlex999_spearman", "analogy_accuracy")


CONFIGS = {"skipgram": "word2vec_lee.py", "cbow": "word2vec_lee_cbow.py"}


def experiment_config(mode: str):
    """The experiment config of ``mode``: experiments/word2vec_lee.py or its CBOW sibling."""
    return load_config(os.path.join(REPO, "experiments", CONFIGS[mode]))


def train_ssl_jax(dataset, config, epochs: int, seed: int):
    """Trains ``epochs`` passes: (word vectors [V, D], seconds, seconds of the first epoch)."""
    objective = make(config, decoded_spec(dataset.spec))
    windows = dataset.train["tokens"]
    batch = config.batch_size
    steps = math.ceil(len(windows) / batch)
    tx, _ = make_optimizer(config.optim, steps * epochs, batch)
    key = jax.random.key(seed)
    init_key, key = jax.random.split(key)
    params, batch_stats, state = objective.init(init_key, None)
    opt_state = tx.init(params)

    def step(carry, inputs):
        params, opt_state, count = carry
        tokens, step_key = inputs

        def loss(p):
            return objective.loss(
                p, batch_stats, state, {"tokens": tokens}, step_key, count, group="model"
            )

        (_, _), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, count + 1), None

    @jax.jit
    def epoch(carry, tokens, keys):
        return jax.lax.scan(step, carry, (tokens, keys))[0]

    rng = np.random.default_rng(seed)
    padding = np.zeros((steps * batch - len(windows), windows.shape[1]), np.int32)
    carry = (params, opt_state, jax.numpy.int32(0))
    start = time.perf_counter()
    first = None
    for e in range(epochs):
        tokens = np.concatenate([windows[rng.permutation(len(windows))], padding])
        keys = jax.random.split(jax.random.fold_in(key, e), steps)
        carry = epoch(carry, tokens.reshape(steps, batch, -1), keys)
        if first is None:
            jax.block_until_ready(carry)
            first = time.perf_counter() - start
    jax.block_until_ready(carry)
    seconds = time.perf_counter() - start
    return np.asarray(carry[0]["embedding"]["table"]), seconds, first


def train_gensim(documents, vocabulary, objective, epochs: int, seed: int, workers: int):
    """gensim's Word2Vec with the same settings: (word vectors [V, D] in our ids, seconds)."""
    from gensim.models import Word2Vec

    model = Word2Vec(
        vector_size=objective.dim,
        window=objective.window,
        negative=objective.negatives if objective.loss == "negative_sampling" else 0,
        hs=int(objective.loss == "hierarchical_softmax"),
        sample=objective.sample,
        ns_exponent=objective.noise_power,
        min_count=5,
        sg=int(objective.mode == "skipgram"),
        seed=seed,
        workers=workers,
    )
    model.build_vocab(documents)
    start = time.perf_counter()
    model.train(documents, total_examples=len(documents), epochs=epochs)
    seconds = time.perf_counter() - start
    vectors = np.zeros((len(vocabulary), objective.dim), np.float32)
    for i, word in enumerate(vocabulary.words):
        if word in model.wv.key_to_index:
            vectors[i] = model.wv[word]
    return vectors, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="skipgram,cbow")
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="gensim worker threads")
    parser.add_argument(
        "--window-length",
        type=int,
        default=64,
        help="ssl_jax's examples: windows of this many tokens; 0: whole documents",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a field of the experiment config of each mode (repeatable)",
    )
    args = parser.parse_args()
    start = time.perf_counter()

    dataset = load_lee(window_length=args.window_length)
    documents = read_documents("lee_background.cor")
    vocabulary = dataset.vocabulary
    words = int((dataset.train["tokens"] > 1).sum())
    print(
        f"lee: {len(documents)} documents, {words:,} in-vocabulary words a pass, "
        f"{len(vocabulary) - 2:,} words; ssl_jax examples {dataset.train['tokens'].shape}; "
        f"{args.epochs} epochs; jax {jax.__version__} "
        f"on {jax.devices()[0].platform}, {os.cpu_count()} CPUs"
    )
    header = f"{'mode':9s} {'library':8s} {'seed':>4s} " + " ".join(f"{c:>20s}" for c in COLUMNS)
    print(header + f" {'train s':>8s} {'words/s':>9s} {'w/s no 1st':>10s}")
    rows = []
    for mode in args.modes.split(","):
        config = experiment_config(mode)
        apply_overrides(config, args.set)
        for seed in (int(s) for s in args.seeds.split(",")):
            for library in ("gensim", "ssl_jax"):
                if library == "gensim":
                    vectors, seconds = train_gensim(
                        documents, vocabulary, config.objective, args.epochs, seed, args.workers
                    )
                    steady = float("nan")
                else:
                    vectors, seconds, first = train_ssl_jax(dataset, config, args.epochs, seed)
                    steady = (
                        words * (args.epochs - 1) / (seconds - first)
                        if args.epochs > 1
                        else float("nan")
                    )
                scores = evaluate(vectors, vocabulary)
                rate = words * args.epochs / seconds
                rows.append((mode, library, seed, scores, seconds, rate, steady))
                print(
                    f"{mode:9s} {library:8s} {seed:4d} "
                    + " ".join(f"{scores[c]:20.3f}" for c in COLUMNS)
                    + f" {seconds:8.1f} {rate:9,.0f} {steady:10,.0f}",
                    flush=True,
                )
    print("\nmeans over seeds")
    for mode in args.modes.split(","):
        for library in ("gensim", "ssl_jax"):
            chosen = [r for r in rows if r[0] == mode and r[1] == library]
            means = [np.mean([r[3][c] for r in chosen]) for c in COLUMNS]
            stds = [np.std([r[3][c] for r in chosen]) for c in COLUMNS]
            rate = np.mean([r[5] for r in chosen])
            print(
                f"{mode:9s} {library:8s} "
                + " ".join(f"{m:13.3f} ± {s:.3f}" for m, s in zip(means, stds, strict=True))
                + f" {rate:9,.0f} words/s"
            )
    counted = ("wordsim353_pairs", "simlex999_pairs", "analogy_questions")
    pairs = {k: rows[0][3][k] for k in counted}
    print(f"pairs and questions in the vocabulary: {pairs}")
    print(f"wall time in all: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
