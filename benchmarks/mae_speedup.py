"""What encoding only the visible patches saves: MAE's encoder on the K visible tokens against
the same encoder on all N tokens (as a masked model that zeroes or replaces hidden patches
must run it), at 75% masking.

    python benchmarks/mae_speedup.py [--settings mnist,cifar10,imagenet] [--repeats 5]

For each setting, two programs, each the gradient with respect to all parameters (a training
step's forward and backward pass, without the optimizer):
- ``encoder``: the ViT's final tokens, visible-only ([B, 1 + K] tokens) vs all ([B, 1 + N]);
- ``encoder + decoder``: MAE's whole loss; in the all-tokens variant the decoder receives the
  N encoded tokens directly (no mask tokens to insert), so its cost is the same in both.
Prints a markdown table of XLA's FLOP count of each compiled program
(``jax.jit(...).lower(...).compile().cost_analysis()``, independent of the machine's load) and
the median wall time of ``--repeats`` runs after compiling (``--repeats 0``: FLOPs only).

Settings: ``mnist`` is experiments/mae_mnist.py's ViT (28×28, patch 4, dim 128, depth 4;
decoder 64 × 2), batch 256; ``cifar10`` experiments/mae_cifar10.py's ViT-Tiny (32×32, patch
4; decoder 128 × 4), batch 64; ``imagenet`` MAE's ViT-Base/16 at 224×224 with its 512-wide,
8-block decoder, batch 8.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.masks import masked_patch_mse, normalized_patch_targets, patchify, random_masking
from ssl_jax.models.vit import ViT
from ssl_jax.objectives.mae import MAEDecoder

SETTINGS = {
    "mnist": dict(
        image=(28, 28, 1),
        batch=256,
        vit=dict(patch_size=4, dim=128, depth=4, num_heads=4),
        decoder=dict(dim=64, depth=2, num_heads=4),
    ),
    "cifar10": dict(
        image=(32, 32, 3),
        batch=64,
        vit=dict(patch_size=4, dim=192, depth=12, num_heads=3),
        decoder=dict(dim=128, depth=4, num_heads=4),
    ),
    "imagenet": dict(
        image=(224, 224, 3),
        batch=8,
        vit=dict(patch_size=16, dim=768, depth=12, num_heads=12),
        decoder=dict(dim=512, depth=8, num_heads=16),
    ),
}


def flops_and_time(fn, args, repeats):
    """XLA's FLOP count of ``jit(fn)`` on ``args`` and its median wall time over ``repeats``."""
    compiled = jax.jit(fn).lower(*args).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, list):
        cost = cost[0]
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    if not repeats:
        return flops, float("nan")
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return flops, float(np.median(times))


def programs(setting, mask_ratio):
    """``{(part, variant): (fn, args)}`` for part ∈ encoder, encoder + decoder and variant ∈
    visible, all."""
    height, width, channels = setting["image"]
    p = setting["vit"]["patch_size"]
    grid = (height // p, width // p)
    num_patches = grid[0] * grid[1]
    vit = ViT(pool="mean", position="sincos", **setting["vit"])
    decoder = MAEDecoder(grid, patch_dim=p * p * channels, **setting["decoder"])
    keys = jax.random.split(jax.random.key(0), 4)
    images = jax.random.uniform(keys[0], (setting["batch"], *setting["image"]))
    mask = random_masking(keys[1], setting["batch"], num_patches, mask_ratio)
    everything = jnp.broadcast_to(jnp.arange(num_patches), (setting["batch"], num_patches))
    enc_params = vit.init(keys[2], images[:1], train=False)["params"]
    encoded = vit.apply({"params": enc_params}, images[:1], mask.keep_indices[:1], method="encode")
    dec_params = decoder.init(keys[3], encoded, mask.restore_order[:1])["params"]
    targets = normalized_patch_targets(patchify(images, p))

    def encoder_cost(params, images, keep):
        return jnp.sum(vit.apply({"params": params}, images, keep, method="encode"))

    def mae_cost(params, images, keep, restore):
        encoded = vit.apply({"params": params["encoder"]}, images, keep, method="encode")
        predictions = decoder.apply({"params": params["decoder"]}, encoded, restore)
        return masked_patch_mse(predictions, targets, mask.mask)

    both = {"encoder": enc_params, "decoder": dec_params}
    return (
        {
            ("encoder", "visible"): (
                jax.grad(encoder_cost),
                (enc_params, images, mask.keep_indices),
            ),
            ("encoder", "all"): (jax.grad(encoder_cost), (enc_params, images, everything)),
            ("encoder + decoder", "visible"): (
                jax.grad(mae_cost),
                (both, images, mask.keep_indices, mask.restore_order),
            ),
            ("encoder + decoder", "all"): (
                jax.grad(mae_cost),
                (both, images, everything, everything),
            ),
        },
        num_patches,
        mask.keep_indices.shape[1],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="mnist,cifar10,imagenet")
    parser.add_argument("--mask_ratio", type=float, default=0.75)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{jax.devices()[0].device_kind}, mask ratio {args.mask_ratio}, fwd + bwd, "
        f"median of {args.repeats}\n"
    )
    print(
        "| setting | part | tokens visible / all | GFLOP visible | GFLOP all | FLOP ratio "
        "| ms visible | ms all | time ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.settings.split(","):
        setting = SETTINGS[name]
        table, num_patches, num_visible = programs(setting, args.mask_ratio)
        for part in ("encoder", "encoder + decoder"):
            costs = [flops_and_time(*table[part, v], args.repeats) for v in ("visible", "all")]
            (f_vis, t_vis), (f_all, t_all) = costs
            print(
                f"| {name} (B={setting['batch']}) | {part} | {1 + num_visible} / {1 + num_patches} "
                f"| {f_vis / 1e9:.2f} | {f_all / 1e9:.2f} | {f_all / f_vis:.2f}× "
                f"| {1e3 * t_vis:.1f} | {1e3 * t_all:.1f} | {t_all / t_vis:.2f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
