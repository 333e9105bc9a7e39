"""The SimCLR train step in PyTorch eager, and its throughput side by side with ssl_jax's.

    pip install -e .[bench]       # torch==2.13.0, the CPU wheel
    python benchmarks/torch_reference.py --compare                 # both steps, the ratio
    python benchmarks/torch_reference.py --compare --batch-size 64 # quick mode
    python benchmarks/torch_reference.py                           # the PyTorch step alone
    python benchmarks/torch_reference.py --breakdown               # where each step's time goes

The PyTorch step is the step of `benchmarks/train_throughput.py` written again by hand:
ResNet-18 with the CIFAR stem (3×3 convolution, stride 1, no max-pool; widths 64-128-256-512;
batch norm with momentum 0.1 in PyTorch's convention, ε = 1e-5; the last norm of every residual
branch starts at γ = 0), the projector 512 → 2048 (no bias) → BN → ReLU → 128, NT-Xent at
τ = 0.2 over the 2B views of one forward pass, and LARS as `optax.lars` computes it (weight
decay 1e-6 and the trust ratio, coefficient 0.001, on the weights with two or more dimensions;
momentum 0.9; learning rate 0.3·B/256). Inputs are B × 2 views of 32×32×3 uint8 arrays,
converted to float in the step; the PyTorch step has no augmentation, while the ssl_jax step
makes its two views on device, so its time includes them (``--breakdown`` measures their
share). Images/s counts source images, B per step (each gives two views), as
train_throughput.py does. PyTorch runs with ``torch.set_num_threads`` = the number of cores
this process may use; XLA's CPU client uses the same cores.

``--compare`` compiles the ssl_jax step (train_throughput.prepare) and warms both up, then
alternates timed rounds of the two steps in this one process, so that a load from elsewhere on
the machine falls on both; the ratio is ssl_jax's rate over PyTorch's, from the total time each
spent over all rounds. It also prints each step's process CPU time, which a shared machine
moves far less than the wall time. ``--breakdown`` times the pieces of both steps: the
augmentation, the forward pass, forward + backward, the optimizer, the step without and with
augmentation. docs/performance.md has the figures of this machine.
"""

import argparse
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

CORES = len(os.sched_getaffinity(0))

# The ssl_jax benchmark's settings (train_throughput.benchmark_config).
TEMPERATURE = 0.2
PROJECTOR_HIDDEN = 2048
PROJECTOR_OUT = 128
LR = 0.3  # scaled linearly: lr · B / 256
WEIGHT_DECAY = 1e-6
MOMENTUM = 0.9
TRUST_COEFFICIENT = 0.001


def batch_norm(channels: int, zero_scale: bool = False, dims: int = 2) -> nn.Module:
    """Flax's BatchNorm(momentum=0.9, epsilon=1e-5) in PyTorch's convention (momentum 0.1)."""
    norm = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(channels, eps=1e-5, momentum=0.1)
    if zero_scale:
        nn.init.zeros_(norm.weight)
    return norm


class BasicBlock(nn.Module):
    """relu(x + BN(conv3×3(relu(BN(conv3×3(x)))))), the shortcut a 1×1 conv + BN when needed."""

    def __init__(self, in_channels: int, features: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, features, 3, stride, padding=1, bias=False)
        self.norm1 = batch_norm(features)
        self.conv2 = nn.Conv2d(features, features, 3, 1, padding=1, bias=False)
        self.norm2 = batch_norm(features, zero_scale=True)
        self.shortcut = None
        if stride != 1 or in_channels != features:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, features, 1, stride, bias=False), batch_norm(features)
            )

    def forward(self, x):
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu((x if self.shortcut is None else self.shortcut(x)) + y)


class ResNet18(nn.Module):
    """ResNet-18, CIFAR stem: [N, 3, 32, 32] → [N, 512] (global average of stage 4)."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, padding=1, bias=False), batch_norm(width), nn.ReLU()
        )
        blocks, channels = [], width
        for stage in range(4):
            features = width * 2**stage
            for index in range(2):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(channels, features, stride))
                channels = features
        self.blocks = nn.Sequential(*blocks)
        self.features = channels

    def forward(self, x):
        return self.blocks(self.stem(x)).mean(dim=(2, 3))


class SimCLR(nn.Module):
    """Encoder + projector; ``forward(views)`` → projections z [2B, 128]."""

    def __init__(self):
        super().__init__()
        self.encoder = ResNet18()
        self.projector = nn.Sequential(
            nn.Linear(self.encoder.features, PROJECTOR_HIDDEN, bias=False),
            batch_norm(PROJECTOR_HIDDEN, dims=1),
            nn.ReLU(),
            nn.Linear(PROJECTOR_HIDDEN, PROJECTOR_OUT),
        )

    def forward(self, views):
        return self.projector(self.encoder(views))


def nt_xent(z, temperature: float = TEMPERATURE):
    """NT-Xent over 2B views (view i's positive is view i ± B); (loss, top-1 accuracy)."""
    z = F.normalize(z, dim=-1)
    n = z.shape[0]
    logits = (z @ z.T) / temperature
    logits = logits.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    positives = torch.arange(n).roll(n // 2)
    loss = F.cross_entropy(logits, positives)
    accuracy = (logits.detach().argmax(dim=-1) == positives).float().mean()
    return loss, accuracy


class LARS(torch.optim.Optimizer):
    """`optax.lars` step by step: u = g + wd·p, u ·= η‖p‖/‖u‖ (weights with ndim ≥ 2 only,
    ratio 1 when either norm is 0), u ·= −lr, m = u + μ·m, p += m."""

    def __init__(self, params, lr, weight_decay, momentum, trust_coefficient):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=trust_coefficient)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                u = p.grad
                if p.ndim > 1:
                    u = u.add(p, alpha=group["weight_decay"])
                    p_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(u)
                    ratio = group["eta"] * p_norm / u_norm
                    ratio = torch.where((p_norm == 0) | (u_norm == 0), 1.0, ratio)
                    u = u * ratio
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                m = state["momentum"]
                m.mul_(group["momentum"]).add_(u, alpha=-group["lr"])
                p.add_(m)


def timed(fn, calls: int) -> tuple[float, float]:
    """``fn()`` ``calls`` times: (wall seconds, CPU seconds of this process) per call.

    The CPU time counts every thread of this process (XLA's and PyTorch's pools alike); on a
    machine shared with other work it moves far less than the wall time, so its ratio is the
    steadier comparison there. CPU time / wall time shows how many cores the process had.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


class TorchStep:
    """The PyTorch SimCLR step on fixed uint8 inputs: ``run(steps)`` → seconds per step."""

    def __init__(self, batch: int, seed: int = 0, channels_last: bool = False):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        self.batch = batch
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = SimCLR().to(memory_format=self.memory_format)
        self.optimizer = LARS(
            self.model.parameters(),
            lr=LR * batch / 256,
            weight_decay=WEIGHT_DECAY,
            momentum=MOMENTUM,
            trust_coefficient=TRUST_COEFFICIENT,
        )
        # Two views of B images, NCHW uint8: the views the ssl_jax step would augment.
        self.views = torch.randint(
            0, 256, (2 * batch, 3, 32, 32), dtype=torch.uint8, generator=generator
        )
        self.model.train()

    def inputs(self):
        return (self.views.float() / 255).contiguous(memory_format=self.memory_format)

    def forward(self):
        z = self.model(self.inputs())
        return nt_xent(z)

    def step(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss, accuracy = self.forward()
        loss.backward()
        self.optimizer.step()
        return loss.detach(), accuracy

    def run(self, steps: int) -> float:
        """Runs ``steps`` steps; seconds per step."""
        start = time.perf_counter()
        for _ in range(steps):
            loss, _ = self.step()
        loss.item()
        return (time.perf_counter() - start) / steps

    def breakdown(self, steps: int) -> dict:
        """(wall, CPU) seconds per call of the forward pass + loss, forward + backward, the
        optimizer, and the whole step."""

        def forward_backward():
            self.optimizer.zero_grad(set_to_none=True)
            self.forward()[0].backward()

        return {
            "forward": timed(self.forward, steps),  # autograd recording, as in training
            "forward + backward": timed(forward_backward, steps),
            "optimizer": timed(self.optimizer.step, steps),
            "step, no augmentation": timed(self.step, steps),
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=256, help="B source images per step")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (--compare)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--compare", action="store_true", help="time the ssl_jax step too")
    parser.add_argument(
        "--breakdown", action="store_true", help="time the pieces of both steps separately"
    )
    parser.add_argument("--channels-last", action="store_true", help="PyTorch in NHWC")
    parser.add_argument("--threads", type=int, default=CORES, help="PyTorch's threads")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    batch = args.batch_size
    print(
        f"SimCLR ResNet-18 (CIFAR stem), batch {batch} × 2 views of 32×32×3, float32; "
        f"{CORES} cores, torch {torch.__version__} with {torch.get_num_threads()} threads"
    )
    torch_step = TorchStep(batch, channels_last=args.channels_last)
    torch_step.run(args.warmup)

    if args.breakdown:
        breakdown(torch_step, batch, args.steps)
        return
    if not args.compare:
        for index in range(1, args.rounds + 1):
            wall, cpu = timed(lambda: torch_step.run(args.steps), 1)
            print(
                f"round {index}: torch {args.steps * batch / wall:.1f} images/s, "
                f"CPU time {cpu / args.steps:.1f} s a step ({cpu / wall:.1f} cores busy)"
            )
        return

    import train_throughput  # beside this file, on sys.path when run as a script

    run_jax, info = train_throughput.prepare("resnet18", batch, "float32")
    print(f"ssl_jax: {info['devices']}× {info['device_kind']}, compile {info['compile_sec']:.1f} s")
    run_jax(args.warmup)
    totals = {"ssl_jax": [0.0, 0.0], "torch": [0.0, 0.0]}
    for index in range(1, args.rounds + 1):
        results = {
            "ssl_jax": timed(lambda: run_jax(args.steps), 1),
            "torch": timed(lambda: torch_step.run(args.steps), 1),
        }
        cells = []
        for name, (wall, cpu) in results.items():
            wall, cpu = wall / args.steps, cpu / args.steps
            totals[name][0] += wall
            totals[name][1] += cpu
            cells.append(f"{name} {batch / wall:.1f} images/s ({cpu / wall:.1f} cores busy)")
        ratio = results["torch"][0] / results["ssl_jax"][0]
        print(f"round {index}: " + ", ".join(cells) + f"; ratio {ratio:.2f}")
    (jax_wall, jax_cpu), (torch_wall, torch_cpu) = totals["ssl_jax"], totals["torch"]
    print(
        f"over {args.rounds} rounds × {args.steps} steps at batch {batch}: "
        f"ssl_jax {args.rounds * batch / jax_wall:.1f} images/s (augmentation included), "
        f"torch {args.rounds * batch / torch_wall:.1f} images/s (no augmentation)"
    )
    print(f"ratio ssl_jax/torch: {torch_wall / jax_wall:.2f} in images/s")
    print(
        f"CPU time per step: ssl_jax {jax_cpu / args.rounds:.1f} s, torch "
        f"{torch_cpu / args.rounds:.1f} s (ratio torch/ssl_jax {torch_cpu / jax_cpu:.2f})"
    )


def jax_breakdown(batch: int, steps: int) -> dict:
    """Seconds per call of the ssl_jax step's pieces, each jitted alone on the same inputs.

    ``augmentation`` is `augment.make_views` of the benchmark config; ``forward``, ``forward +
    backward`` and ``step, no augmentation`` use an objective whose views are the images
    themselves (every random op at probability 0, crops of the whole image), so only the
    model's share remains; ``optimizer`` is the LARS update and its application.
    """
    import functools

    import jax
    import numpy as np
    import optax
    import train_throughput  # beside this file, on sys.path when run as a script

    from ssl_jax import augment, train
    from ssl_jax.data.spec import ArraySpec, decoded_spec, sample_batch

    spec = {"images": ArraySpec((32, 32, 3), "uint8", "images")}
    config = train_throughput.benchmark_config("resnet18", batch, "float32")
    plain = train_throughput.benchmark_config("resnet18", batch, "float32")
    plain.aug.update(global_scale=(1.0, 1.0), ratio=(1.0, 1.0))
    for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
        plain.aug[name] = 0.0
    objective, optimizers, schedules = train.build_objective(config, spec)
    plain_objective, _, _ = train.build_objective(plain, spec)
    init = functools.partial(train.init_state, objective, optimizers, seed=0)
    state = jax.jit(init)(sample_batch(decoded_spec(spec)))
    pixels = np.random.default_rng(0).integers(0, 256, (batch, 32, 32, 3), np.uint8)
    batch_arrays = {"images": jax.numpy.asarray(pixels, jax.numpy.float32) / 255}
    key = jax.random.PRNGKey(0)

    def loss(params):
        return plain_objective.loss(
            params,
            state.batch_stats,
            state.objective_state,
            batch_arrays,
            key,
            state.step,
            group="model",
        )

    def optimizer(grads, opt_state, params):
        updates, opt_state = optimizers["model"].update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def step_of(objective_):
        return functools.partial(
            train.train_step, objective=objective_, optimizers=optimizers, schedules=schedules
        )

    opt_state = state.opt_state["model"]
    pieces = {
        "augmentation": (
            lambda x, k: augment.make_views(x, k, config.aug),
            batch_arrays["images"],
            key,
        ),
        "forward": (lambda p: loss(p)[0], state.params),
        "forward + backward": (jax.grad(lambda p: loss(p)[0]), state.params),
        "optimizer": (optimizer, state.params, opt_state, state.params),
        "step, no augmentation": (step_of(plain_objective), state, batch_arrays),
        "step": (step_of(objective), state, batch_arrays),
    }
    times = {}
    for name, (fn, *args) in pieces.items():
        compiled = jax.jit(fn).lower(*args).compile()
        jax.block_until_ready(compiled(*args))  # warm-up
        times[name] = timed(lambda: jax.block_until_ready(compiled(*args)), steps)  # noqa: B023
    return times


def breakdown(torch_step: TorchStep, batch: int, steps: int):
    """Prints both steps' pieces side by side: wall and CPU milliseconds per call."""
    jax_times = jax_breakdown(batch, steps)
    torch_times = torch_step.breakdown(steps)
    print(f"batch {batch}, {steps} calls each after one warm-up; milliseconds per call")
    print(
        f"{'piece':<24}{'ssl_jax wall':>14}{'ssl_jax CPU':>13}{'torch wall':>12}{'torch CPU':>11}"
    )
    for name in jax_times:
        cells = []
        for t, width in ((jax_times, (14, 13)), (torch_times, (12, 11))):
            if name in t:
                cells += [
                    f"{t[name][0] * 1000:{width[0]}.0f}",
                    f"{t[name][1] * 1000:{width[1]}.0f}",
                ]
            else:
                cells += [f"{'-':>{width[0]}}", f"{'-':>{width[1]}}"]
        print(f"{name:<24}{''.join(cells)}")


if __name__ == "__main__":
    main()
