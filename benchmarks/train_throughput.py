"""Throughput of the SimCLR train step: images/s, step time, compile time, MFU.

    python benchmarks/train_throughput.py [--model resnet18] [--batch 256] [--dtype float32]

The step is the real one (`ssl_jax.train.compile_train_step`): two augmented views made on
device from uint8 32×32×3 images, encoder + projection head, NT-Xent over the global batch,
gradients and the optimizer update, data-parallel over every device present. Images/s counts
source images (each gives two views). Inputs are random uint8 arrays: the pipeline cost is in
the augmentations, which run on device and are included. MFU = model FLOPs per second (XLA's
cost analysis of the lowered step) / the device's peak for the compute dtype, printed when the
device's peak is known.
"""

import argparse
import functools
import time

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import augment, train
from ssl_jax.config import base_config
from ssl_jax.data.pipeline import device_batch
from ssl_jax.data.spec import ArraySpec, decoded_spec, sample_batch

# Dense peak FLOP/s per device by (device kind substring, dtype). float32 on Hopper and Ampere
# GPUs: matrix products and convolutions run as TF32 at JAX's default precision (a ResNet-18
# step measured at 109 TFLOP/s on an H200, above the 67 TFLOP/s of non-tensor float32).
PEAK_FLOPS = {
    ("H100", "bfloat16"): 989e12,
    ("H100", "float32"): 494e12,
    ("H200", "bfloat16"): 989e12,
    ("H200", "float32"): 494e12,
    ("A100", "bfloat16"): 312e12,
    ("A100", "float32"): 156e12,
    ("TPU v4", "bfloat16"): 275e12,
    ("TPU v5", "bfloat16"): 459e12,
}

MODELS = {
    "resnet18": dict(name="resnet18", stem="cifar"),
    "resnet50": dict(name="resnet50", stem="cifar"),
    "vit_s": dict(name="vit_small", patch_size=4),
}


def benchmark_config(model: str, batch: int, dtype: str) -> ml_collections.ConfigDict:
    c = base_config()
    c.batch_size = batch
    c.num_steps = 1000
    c.compute_dtype = dtype
    c.model = ml_collections.ConfigDict(MODELS[model])
    c.objective = ml_collections.ConfigDict(
        dict(name="simclr", temperature=0.2, projector=dict(hidden_dims=(2048,), output_dim=128))
    )
    c.aug = augment.default_config()  # the full SimCLR pipeline, at 32×32
    c.optim.name = "lars"
    c.optim.lr = 0.3
    c.optim.lr_scaling = "linear"
    c.optim.weight_decay = 1e-6
    return c


def peak_flops(dtype: str) -> float | None:
    kind = jax.devices()[0].device_kind
    return next((v for (k, d), v in PEAK_FLOPS.items() if k in kind and d == dtype), None)


def prepare(model: str, batch: int, dtype: str, num_devices: int = 0):
    """Compiles the SimCLR step and runs it once; returns ``(run, info)``.

    ``run(steps)`` times ``steps`` more steps and returns seconds per step; ``info`` holds the
    device count and kind, the compile time and XLA's FLOPs per step. The state stays inside
    ``run`` (it is donated each step), so timed rounds can alternate with other work.
    """
    config = benchmark_config(model, batch, dtype)
    mesh = train.make_mesh(num_devices)
    train.check_batch_size(batch, mesh)
    image_shape = (32, 32, 3)
    spec = {"images": ArraySpec(image_shape, "uint8", "images")}
    objective, optimizers, schedules = train.build_objective(config, spec)
    init = functools.partial(train.init_state, objective, optimizers, seed=0)
    state = jax.jit(init, out_shardings=NamedSharding(mesh, P()))(sample_batch(decoded_spec(spec)))
    images = np.random.default_rng(0).integers(0, 256, (batch, *image_shape), np.uint8)
    batch_on_mesh = device_batch({"images": images}, NamedSharding(mesh, P("data")), spec)
    step_fn = train.compile_train_step(objective, optimizers, schedules, mesh)

    start = time.perf_counter()
    lowered = step_fn.lower(state, batch_on_mesh)
    compiled = lowered.compile()
    compile_sec = time.perf_counter() - start
    # FLOPs of the program as written, before the backend rewrites it: on GPUs the compiled
    # program's cost analysis leaves out convolutions handed to cuDNN (measured on an H200:
    # 9.9 GFLOP a ResNet-18 step instead of the 1,494 counted here), which would make MFU
    # meaningless.
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops_per_step = float(cost.get("flops", 0.0)) if cost else 0.0

    state, metrics = compiled(state, batch_on_mesh)  # warm-up
    jax.block_until_ready(metrics)

    def run(steps: int) -> float:
        nonlocal state
        start = time.perf_counter()
        for _ in range(steps):
            state, metrics = compiled(state, batch_on_mesh)
        jax.block_until_ready(metrics)
        return (time.perf_counter() - start) / steps

    info = {
        "devices": mesh.size,
        "device_kind": jax.devices()[0].device_kind,
        "compile_sec": compile_sec,
        "flops_per_step": flops_per_step,
    }
    return run, info


def measure(model: str, batch: int, dtype: str, steps: int, num_devices: int = 0) -> dict:
    """Compiles and times the SimCLR step; returns compile time, step time, images/s, FLOPs."""
    run, info = prepare(model, batch, dtype, num_devices)
    step_sec = run(steps)
    return {**info, "step_sec": step_sec, "images_per_sec": batch / step_sec}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="resnet18")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--steps", type=int, default=5, help="timed steps after warm-up")
    args = parser.parse_args()

    r = measure(args.model, args.batch, args.dtype, args.steps)
    print(
        f"device: {r['devices']}× {r['device_kind']}; model {args.model}, "
        f"batch {args.batch} × 2 views, {args.dtype}"
    )
    print(f"compile: {r['compile_sec']:.1f} s")
    print(f"step: {r['step_sec'] * 1000:.1f} ms; throughput: {r['images_per_sec']:.1f} images/s")
    if r["flops_per_step"]:
        achieved = r["flops_per_step"] / r["step_sec"]
        gflops = r["flops_per_step"] / 1e9
        line = f"model FLOPs: {gflops:.1f} GFLOP/step, {achieved / 1e12:.3f} TFLOP/s"
        peak = peak_flops(args.dtype)
        if peak:
            line += (
                f"; MFU {achieved / (peak * r['devices']):.1%} of {peak / 1e12:.0f} TFLOP/s peak"
            )
        print(line)


if __name__ == "__main__":
    main()
