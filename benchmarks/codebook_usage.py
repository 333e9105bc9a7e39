"""VQ-VAE codebook usage with and without the EMA codebook and dead-code restarts
(docs/discrete_codes.md).

    python benchmarks/codebook_usage.py [--config experiments/vq_vae_mnist.py] [--steps 500]
        [--seed 0] [--set objective.num_codes=128 ...]

Trains the config's VQ-VAE four times in this process, as the four settings of
``objective.ema`` × ``objective.restart_dead_codes`` (everything else as the config says), then
quantises the held-out images (1,000 on the MNIST subset) with each final codebook, in
inference mode, and prints a markdown row per setting: codes chosen by at least one held-out
vector (of K), the perplexity of the held-out code frequencies (the effective number of codes
in use), the held-out reconstruction (Bernoulli cross-entropy, nats per image), the last
training batch's perplexity and dead codes (unchosen for ``restart_after_steps`` steps), and
the wall time of the training.
"""

import argparse
import functools
import itertools
import time

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax.config import apply_overrides, load_config
from ssl_jax.data import load_dataset
from ssl_jax.data.spec import decoded_spec, sample_batch
from ssl_jax.latent import bernoulli_nll
from ssl_jax.models import build_encoder
from ssl_jax.models.conv_decoder import ConvDecoder
from ssl_jax.objectives.vq_vae import deepest_feature_map
from ssl_jax.quantize import code_counts, codebook_perplexity, quantize
from ssl_jax.train import build_objective, compile_train_step, init_state, make_mesh


def train_in_process(config, dataset):
    """``config.num_steps`` training steps; returns the final `TrainState` and the last
    step's metrics (the objective state, which holds the EMA codebook, stays in memory)."""
    mesh = make_mesh(config.num_devices)
    objective, optimizers, schedules = build_objective(config, dataset.spec)
    init = functools.partial(init_state, objective, optimizers, seed=config.seed)
    state = jax.jit(init, out_shardings=NamedSharding(mesh, P()))(
        sample_batch(decoded_spec(dataset.spec))
    )
    step = compile_train_step(objective, optimizers, schedules, mesh)
    batches = dataset.train_batches(
        config.batch_size, config.seed, 0, NamedSharding(mesh, P("data"))
    )
    metrics = {}
    for _ in range(config.num_steps):
        _, batch = next(batches)
        state, metrics = step(state, batch)
    return jax.device_get(state), jax.device_get(metrics)


def held_out_codes(config, state, images):
    """The held-out images' codes [N, h, w] and reconstruction nats [N], in inference mode."""
    cfg = config.objective
    params, stats = state.params, state.batch_stats
    if cfg.ema:
        codebook = state.objective_state.ema.codebook
    else:
        codebook = params["codebook"]["embedding"] + state.objective_state.restart_shift
    encoder = build_encoder(config.model, images.shape[1:])
    decoder = ConvDecoder(images.shape[1:], width=cfg.decoder_width)

    @jax.jit
    def codes(x):
        variables = {"params": params["encoder"], "batch_stats": stats["encoder"]}
        _, layers = encoder.apply(variables, x, train=False, return_layers=True)
        projection = params["pre_quantizer"]
        z = deepest_feature_map(layers, config.model.name) @ projection["kernel"]
        _, indices, e = quantize(z + projection["bias"], codebook)
        logits = decoder.apply({"params": params["decoder"]}, e, train=False)
        return indices, bernoulli_nll(logits, x)

    pieces = [codes(images[i : i + 500]) for i in range(0, len(images), 500)]
    return np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/vq_vae_mnist.py")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every setting")
    args = parser.parse_args()
    base = load_config(args.config)
    apply_overrides(base, [f"num_steps={args.steps}", f"seed={args.seed}", *args.set])
    dataset = load_dataset(base.dataset, base.data.to_dict())
    images = dataset.decoded("test", "images")
    num_codes = base.objective.num_codes
    print(
        f"{base.dataset}, {args.steps} steps at batch {base.batch_size}, K = {num_codes}, "
        f"seed {args.seed}; held-out: {len(images)} images\n"
        "| codebook | restarts | held-out codes used | held-out perplexity | held-out "
        "reconstruction (nats) | last batch perplexity | dead codes at the end | wall |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for ema, restart in itertools.product((False, True), repeat=2):
        config = base.copy_and_resolve_references()
        config.objective.ema, config.objective.restart_dead_codes = ema, restart
        start = time.perf_counter()
        state, metrics = train_in_process(config, dataset)
        wall = time.perf_counter() - start
        indices, nll = held_out_codes(config, state, images)
        counts = np.asarray(code_counts(indices, num_codes))
        print(
            f"| {'EMA' if ema else 'gradient'} | {'on' if restart else 'off'} | "
            f"{int((counts > 0).sum())}/{num_codes} | "
            f"{float(codebook_perplexity(counts)):.1f} | {nll.mean():.1f} | "
            f"{float(metrics['perplexity']):.1f} | {int(metrics['dead_codes'])} | "
            f"{wall:.0f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
