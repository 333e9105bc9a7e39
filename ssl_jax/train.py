"""The training loop: config → data → objective → sharded state → jitted step → logs, checkpoints.

    python -m ssl_jax.train --config experiments/simclr_mnist.py --workdir runs/simclr \
        [--config.optim.lr=0.3 ...] [--resume]

How the step is parallelised: the state is replicated and every batch is sharded along its
first axis over a one-axis device mesh (``"data"``, all devices of all processes). The step is
written in the *global view* — it sees the whole global batch, as on one device — and
``jax.jit`` with these shardings lets XLA partition it: each device runs the forward and
backward pass on its shard, and XLA inserts the collectives that the global computation
implies (all-gather of projections for the similarity matrix, all-reduce of batch-norm moments
and of gradients). So a loss over the global batch (negatives, cross-correlation, queue keys)
and batch norm over the global batch are correct by construction, with no hand-written psum to
forget or to double (the shard_map pitfall). The test suite checks that 8 devices reproduce
the 1-device step.
"""

import argparse
import functools
import json
import os
import sys

import jax
import numpy as np
import optax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_jax import config as config_lib
from ssl_jax.checkpoint import Checkpoints
from ssl_jax.data import load_dataset
from ssl_jax.data.pipeline import steps_per_epoch
from ssl_jax.data.spec import decoded_spec, sample_batch, spec_to_json
from ssl_jax.errors import UserError
from ssl_jax.logs import MetricsLog
from ssl_jax.pictures import PICTURE_EXAMPLES, save_pictures
from ssl_jax.readout import check_readout_config, run_readout
from ssl_jax.state import (
    TrainState,
    build_objective,
    frozen_modules,
    init_state,
    load_init_from,
    parameter_groups,
)


def loss_of_group(
    trainable, *, objective, params, batch_stats, objective_state, batch, key, step, group
):
    """The objective's loss as a function of one group's parameters, the others fixed."""
    merged = {**params, **trainable}
    return objective.loss(merged, batch_stats, objective_state, batch, key, step, group=group)


def train_step(state: TrainState, batch: dict, *, objective, optimizers, schedules, frozen=()):
    """One optimisation step on the global batch: ``(state, batch) -> (state, metrics)``.

    ``batch`` holds the decoded named arrays (the data pipeline decodes them). Each parameter
    group in turn (one group unless the objective defines several) takes the gradient of
    ``objective.loss(..., group=g)`` with respect to its own modules, the others held fixed,
    and applies its own optimizer; then the objective updates its extra state. ``frozen``
    modules take no step, and their batch statistics stay as loaded.
    """
    step_key = jax.random.fold_in(state.rng, state.step)
    params, batch_stats, opt_state = state.params, state.batch_stats, dict(state.opt_state)
    groups = parameter_groups(objective, params, frozen)
    metrics, outputs = {}, {}
    for index, (group, modules) in enumerate(groups.items()):
        group_params = {m: params[m] for m in modules}

        group_loss = functools.partial(
            loss_of_group,
            objective=objective,
            params=params,
            batch_stats=batch_stats,
            objective_state=state.objective_state,
            batch=batch,
            key=jax.random.fold_in(step_key, index) if len(groups) > 1 else step_key,
            step=state.step,
            group=group,
        )
        (_, out), grads = jax.value_and_grad(group_loss, has_aux=True)(group_params)
        updates, opt_state[group] = optimizers[group].update(grads, opt_state[group], group_params)
        params = {**params, **optax.apply_updates(group_params, updates)}
        new_stats = {m: v for m, v in out.batch_stats.items() if m not in frozen}
        batch_stats = {**batch_stats, **new_stats}
        outputs.update(out.outputs)
        prefix = f"{group}/" if len(groups) > 1 else ""
        metrics.update({prefix + k: v for k, v in out.metrics.items()})
        metrics[prefix + "grad_norm"] = optax.tree.norm(grads)
        metrics[prefix + "lr"] = schedules[group](state.step)
    objective_state = objective.update_state(state.objective_state, params, outputs, state.step)
    new_state = TrainState(
        state.step + 1, params, batch_stats, opt_state, objective_state, state.rng
    )
    return new_state, metrics


def make_mesh(num_devices: int) -> Mesh:
    """A one-axis ``"data"`` mesh over ``num_devices`` devices (0: all of them)."""
    devices = jax.devices()
    if num_devices:
        if jax.process_count() > 1:
            raise UserError("num_devices must be 0 (all devices) in a multi-process run.")
        if num_devices > len(devices):
            raise UserError(
                f"num_devices={num_devices} but only {len(devices)} devices are present; "
                "lower --config.num_devices or set it to 0 for all."
            )
        devices = devices[:num_devices]
    # Auto axes: XLA propagates shardings through the global-view step on its own, so an
    # objective's code never needs explicit resharding annotations.
    return Mesh(np.array(devices), ("data",), axis_types=(AxisType.Auto,))


def compile_train_step(objective, optimizers, schedules, mesh: Mesh, frozen=()):
    """``train_step`` jitted over the mesh: state replicated, batch sharded, state donated."""
    replicated = NamedSharding(mesh, P())
    batch_sharded = NamedSharding(mesh, P("data"))
    step = functools.partial(
        train_step,
        objective=objective,
        optimizers=optimizers,
        schedules=schedules,
        frozen=tuple(frozen),
    )
    return jax.jit(
        step,
        in_shardings=(replicated, batch_sharded),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
    if global_batch % mesh.size:
        raise UserError(
            f"batch_size {global_batch} is not divisible by the {mesh.size} devices; "
            f"use a multiple of {mesh.size} (e.g. --config.batch_size="
            f"{max(mesh.size, global_batch // mesh.size * mesh.size)})."
        )


def check_workdir(workdir: str, resume: bool) -> None:
    """Refuses a --workdir that is a file, or a --resume where no run was ever started."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise UserError(
            f"--workdir {workdir} is a file, not a directory; choose another --workdir."
        )
    if resume and not os.path.exists(os.path.join(workdir, "config.json")):
        where = "does not exist" if not os.path.exists(workdir) else "holds no run (no config.json)"
        raise UserError(
            f"--resume: no run to resume in {workdir} (it {where}); check the path, or drop "
            "--resume to start a new run there."
        )
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create --workdir {workdir}: {err.strerror}.") from None


def check_resume(config, workdir: str, resume: bool, checkpoints: Checkpoints, from_step) -> dict:
    """Refuses to overwrite a run, or to resume one with a config that rewrites its past.

    Returns the allowed changes of a resume, ``{dotted path: [old, new]}``
    (`ssl_jax.config.RESUME_MAY_CHANGE`).
    """
    latest = checkpoints.latest_step()
    if not resume:
        if latest is not None:
            raise UserError(
                f"{workdir} already holds a run (checkpoint at step {latest}); pass --resume "
                "to continue it or choose another --workdir."
            )
        return {}
    saved = config_lib.read_saved_config(os.path.join(workdir, "config.json"))
    resolved = config_lib.to_dict(config)
    differences = config_lib.config_differences(saved, resolved)
    refused = [p for p in differences if not config_lib.resume_may_change(p)]
    if refused:
        raise UserError(
            f"--resume: {workdir} holds a run with a different config (differs in "
            f"{', '.join(refused)}); resume with the same config or use a new --workdir "
            f"(a resume may change only {', '.join(config_lib.RESUME_MAY_CHANGE)})."
        )
    step = from_step if from_step is not None else latest
    if step is not None and config.num_steps < step:
        raise UserError(
            f"--resume: num_steps {config.num_steps} is below step {step} of the checkpoint; "
            f"set --config.num_steps={step} or more."
        )
    return {
        p: [config_lib.value_at(saved, p), config_lib.value_at(resolved, p)] for p in differences
    }


def record_workdir(config, dataset, workdir: str, changes: dict, step: int) -> None:
    """Writes ``config.json`` and ``run_info.json``; appends a resume's changes, with the step
    they took effect, to ``config_changes.jsonl``."""
    if jax.process_index() != 0:
        return
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config_lib.to_dict(config), f, indent=2)
    with open(os.path.join(workdir, "run_info.json"), "w") as f:
        info = {"dataset": repr(dataset), "input_spec": spec_to_json(dataset.spec)}
        json.dump(info, f, indent=2)
    if changes:
        with open(os.path.join(workdir, "config_changes.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, "changes": changes}) + "\n")
        described = ", ".join(f"{p} {old!r} → {new!r}" for p, (old, new) in changes.items())
        print(f"--resume: from step {step}, {described} (recorded in config_changes.jsonl)")


def loss_values(metrics: dict) -> dict:
    """The logged losses of every parameter group: metrics named ``loss`` or ``…loss``."""
    return {k: v for k, v in metrics.items() if k.split("/")[-1].endswith("loss")}


def check_finite(step: int, metrics: dict, checkpoints: Checkpoints, objective_name: str) -> None:
    """Stops a run whose loss (any group's) is not finite; an objective must log a loss."""
    losses = loss_values(metrics)
    if not losses:
        raise UserError(
            f"objective {objective_name!r} logs no loss metric (its metrics: "
            f"{', '.join(metrics)}); its loss function must return metrics with a 'loss' entry."
        )
    bad = {k: float(v) for k, v in losses.items() if not np.all(np.isfinite(v))}
    if bad:
        latest = checkpoints.latest_step()
        kept = f"the last good checkpoint is step {latest}" if latest else "no checkpoint yet"
        name, value = next(iter(bad.items()))
        raise UserError(
            f"training diverged: the {name} is {value} at step {step} ({kept}, in "
            f"{checkpoints.directory}); lower --config.optim.lr or set --config.optim.clip_norm."
        )


def restore_state(checkpoints: Checkpoints, state: TrainState, step: int | None) -> TrainState:
    """The checkpoint of ``step`` (default: the latest), or a clear error if it is unusable."""
    available = checkpoints.all_steps()
    chosen = max(available) if step is None else step
    if chosen not in available:
        raise UserError(
            f"no checkpoint at step {step} in {checkpoints.directory} (available: {available})."
        )
    try:
        return checkpoints.restore(chosen, state)
    except Exception as err:  # noqa: BLE001 - orbax raises many types for damaged files
        earlier = [s for s in available if s < chosen]
        hint = (
            f"pass --resume_from_step {earlier[-1]} to resume from the previous one"
            if earlier
            else "no earlier checkpoint exists; start a new run in another --workdir"
        )
        raise UserError(
            f"checkpoint {os.path.join(checkpoints.directory, str(chosen))} is corrupted or "
            f"incomplete ({type(err).__name__}); {hint}."
        ) from None


def write_pictures(objective, state, dataset, workdir: str, seed: int) -> None:
    """The objective's picture grids of the first held-out images, saved in ``workdir``."""
    held_out = dataset.readout_data(1, PICTURE_EXAMPLES)
    images, *others = (held_out.decoded("test", name) for name in objective.picture_inputs)
    if len(images) < 2:
        return
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x9C7)  # a stream of its own
    params, batch_stats = jax.device_get((state.params, state.batch_stats))
    extra = dict(zip(objective.picture_inputs[1:], others, strict=True))
    pictures = jax.jit(objective.pictures)(params, batch_stats, images, key, **extra)
    save_pictures(workdir, int(state.step), jax.device_get(pictures))


def train(config, workdir: str, resume: bool = False, resume_from_step: int | None = None) -> dict:
    """Runs (or resumes) pretraining in ``workdir``; returns the readout (or ``{}``)."""
    resume = resume or resume_from_step is not None
    config_lib.check_config(config)
    check_readout_config(config.readout)
    check_workdir(workdir, resume)
    is_main = jax.process_index() == 0

    # Data, mesh and objective. The dataset is in memory or streamed from TFDS; the loop only
    # uses what both provide (see ssl_jax.data.datasets).
    dataset = load_dataset(config.dataset, config.data.to_dict())
    mesh = make_mesh(config.num_devices)
    check_batch_size(config.batch_size, mesh)
    steps_per_epoch(dataset.num_train_examples, config.batch_size)
    objective, optimizers, schedules = build_objective(config, dataset.spec)
    frozen = frozen_modules(config)
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    data = log = None
    try:  # every exit, an error too, closes the checkpoints (and waits for a save in flight)
        changes = check_resume(config, workdir, resume, checkpoints, resume_from_step)

        # The initial state, replicated on the mesh (modules named by init_from loaded from
        # another run); or the latest checkpoint (or --resume_from_step's) with --resume.
        sample = sample_batch(decoded_spec(dataset.spec))  # init reads shapes only
        abstract = jax.eval_shape(objective.init, jax.random.PRNGKey(0), sample)
        loaded = load_init_from(config, abstract[0], abstract[1])
        initialize = jax.jit(
            functools.partial(init_state, objective, optimizers, seed=config.seed, frozen=frozen),
            out_shardings=NamedSharding(mesh, P()),
        )
        state = initialize(sample, loaded=loaded)
        start_step = 0
        if resume and (checkpoints.latest_step() is not None or resume_from_step is not None):
            state = restore_state(checkpoints, state, resume_from_step)
            start_step = int(state.step)
        elif resume and is_main:
            print(f"--resume: {workdir} has no checkpoint yet; starting from step 0.")
        # Nothing in the workdir changes until here, where the run is sure to start.
        record_workdir(config, dataset, workdir, changes, start_step)
        if is_main and checkpoints.set_aside_after(start_step):
            print(f"checkpoints after step {start_step} moved to abandoned_checkpoints/")
        if is_main:
            print(f"{dataset}\nmesh: {mesh.size} device(s) of {jax.devices()[0].platform}")
            print(f"objective: {objective.name}; starting at step {start_step}/{config.num_steps}")

        # The loop. Metrics stay on device until a log step, so the host never waits on the
        # device in between; a save only happens after the losses since the last log are
        # checked.
        step_fn = compile_train_step(objective, optimizers, schedules, mesh, frozen)
        sharding = NamedSharding(mesh, P("data"))
        log = MetricsLog(workdir, start_step, config.num_steps, enabled=is_main)
        data = dataset.train_batches(config.batch_size, config.seed, start_step, sharding)
        pending = []
        for step, batch in data:
            if step >= config.num_steps:
                break
            state, metrics = step_fn(state, batch)
            pending.append((step + 1, metrics))
            done = step + 1
            save_now = done % config.checkpoint_every == 0 or done == config.num_steps
            if done % config.log_every == 0 or save_now or done == start_step + 1:
                for logged_step, values in jax.device_get(pending):
                    check_finite(logged_step, values, checkpoints, objective.name)
                log.write(pending[-1][0], jax.device_get(pending[-1][1]), steps_done=len(pending))
                pending = []
            if save_now:
                checkpoints.save(done, state)
    finally:
        if data is not None:
            data.close()  # stops the readers of a streamed dataset before the readout
        checkpoints.close()
        if log is not None:
            log.close()

    if objective.pictures is not None and is_main and "images" in dataset.spec:
        write_pictures(objective, state, dataset, workdir, config.seed)
    if not config.readout.enabled:
        return {}
    in_memory = dataset.readout_data(
        config.readout.max_train_examples, config.readout.max_heldout_examples
    )
    result = run_readout(
        config, in_memory, objective, state, initial_state=initialize(sample, loaded=loaded)
    )
    if is_main and result:
        with open(os.path.join(workdir, "readout.json"), "w") as f:
            json.dump(result, f, indent=2)
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m ssl_jax.train",
        description="Pretrain a representation. Override any config field with "
        "--config.FIELD=VALUE (e.g. --config.optim.lr=0.3).",
    )
    parser.add_argument("--config", required=True, help="experiment config file (get_config())")
    parser.add_argument("--workdir", required=True, help="directory for logs and checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue the run in --workdir")
    parser.add_argument(
        "--resume_from_step", type=int, help="resume from this checkpoint instead of the latest"
    )
    multi = parser.add_argument_group("multi-process runs (one process per host)")
    multi.add_argument("--coordinator", help="HOST:PORT of process 0's coordination service")
    multi.add_argument("--num_processes", type=int, help="number of processes in the run")
    multi.add_argument("--process_id", type=int, help="this process's index, 0..N-1")
    multi.add_argument(
        "--distributed",
        action="store_true",
        help="initialise JAX's distributed runtime from the environment (SLURM, TPU, k8s)",
    )
    multi.add_argument(
        "--heartbeat_timeout",
        type=int,
        default=100,
        help="seconds after which the others stop if a process stops answering",
    )
    args, rest = parser.parse_known_args(argv)
    overrides = []
    for item in rest:
        if not item.startswith("--config."):
            raise UserError(
                f"unknown argument {item!r}; config fields are set as --config.FIELD=VALUE."
            )
        overrides.append(item[len("--config.") :])
    return args, overrides


def initialize_distributed(args) -> None:
    """Starts JAX's distributed runtime when the command line asks for a multi-process run."""
    if not (args.coordinator or args.distributed):
        return
    if args.coordinator and (args.num_processes is None or args.process_id is None):
        raise UserError("--coordinator needs --num_processes and --process_id as well.")
    # CPU processes exchange collectives through gloo; GPUs and TPUs use their own transport.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        heartbeat_timeout_seconds=args.heartbeat_timeout,
    )


def main(argv=None) -> int:
    try:
        args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
        initialize_distributed(args)
        config = config_lib.load_config(args.config)
        for note in config_lib.apply_overrides(config, overrides):
            print(note)
        train(config, args.workdir, resume=args.resume, resume_from_step=args.resume_from_step)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
