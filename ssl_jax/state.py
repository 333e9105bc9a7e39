"""The train state and how a run's objective, optimizers and initial state are built.

Shared by the trainer (`ssl_jax.train`) and the evaluation CLI (`ssl_jax.evaluate`, which
rebuilds a run's step-0 state as its random-init baseline) so neither imports the other.
"""

import dataclasses
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import precision
from ssl_jax.data.spec import sample_batch
from ssl_jax.errors import UserError
from ssl_jax.objectives import Objective, make_objective
from ssl_jax.optim import make_optimizer


class TrainState(NamedTuple):
    """Everything a run carries from step to step, as one pytree."""

    step: jax.Array  # int32 [], number of completed steps
    params: dict  # {module name: params}
    batch_stats: dict  # {module name: batch-norm statistics}
    opt_state: dict  # {parameter group: optax state}
    objective_state: Any  # the objective's typed state: EMA targets, queues, centres...
    rng: jax.Array  # uint32 [2], the run's key; step t uses fold_in(rng, t)

    def __repr__(self) -> str:
        return describe_tree(self._asdict(), name="TrainState")


def describe_tree(tree, name: str = "") -> str:
    """A readable outline of a pytree: one line per leaf with its dtype and shape."""
    lines = [f"{name}("] if name else []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        shape = "×".join(map(str, np.shape(leaf))) or "scalar"
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        lines.append(f"  {jax.tree_util.keystr(path)}: {dtype}[{shape}]")
    count = sum(int(np.size(x)) for x in jax.tree.leaves(tree))
    lines.append(f"){' ' + f'{count:,} numbers' if name else ''}")
    return "\n".join(lines)


# --- which modules train -----------------------------------------------------------------


def frozen_modules(config) -> tuple[str, ...]:
    """Modules loaded by ``config.init_from`` with ``frozen=True``: they never move."""
    init_from = config.get("init_from")
    if not init_from or not init_from.get("workdir") or not init_from.get("frozen"):
        return ()
    return tuple(target for target, _ in module_pairs(init_from))


def parameter_groups(objective: Objective, params, frozen=()) -> dict[str, tuple[str, ...]]:
    """``{group: modules}`` that the optimizers update: the objective's groups (one group
    ``"model"`` of every module by default) without the frozen modules."""
    groups = dict(objective.param_groups or {"model": tuple(params)})
    trainable = {g: tuple(m for m in modules if m not in frozen) for g, modules in groups.items()}
    return {g: modules for g, modules in trainable.items() if modules}


def group_optim_config(config, group: str):
    groups = config.get("optim_groups") or {}
    return groups.get(group, config.optim)


def build_objective(config, input_spec):
    """The objective and, for each of its parameter groups, an optimizer and its schedule.

    ``input_spec`` is the dataset's element spec (stored or decoded: the objective is given the
    decoded one).
    """
    from ssl_jax.data.spec import decoded_spec

    precision.configure(config.compute_dtype)
    spec = decoded_spec(input_spec)
    objective = make_objective(config, spec)
    if config.compute_dtype == "float64":  # the exactness mode: everything in float64
        objective = in_float64(objective)
    abstract_params = jax.eval_shape(objective.init, jax.random.PRNGKey(0), sample_batch(spec))[0]
    frozen = frozen_modules(config)
    unknown = [m for m in frozen if m not in abstract_params]
    if unknown:
        raise UserError(
            f"init_from names module(s) {', '.join(unknown)} that objective "
            f"{objective.name!r} does not have (its modules: {', '.join(abstract_params)})."
        )
    optimizers, schedules = {}, {}
    for group in parameter_groups(objective, abstract_params, frozen):
        optimizers[group], schedules[group] = make_optimizer(
            group_optim_config(config, group), config.num_steps, config.batch_size
        )
    return objective, optimizers, schedules


def in_float64(objective: Objective) -> Objective:
    """``objective`` in the exactness mode: its parameters, batch statistics and objective state
    are float64 (Flax creates float32 parameters whatever the compute dtype), and so are the
    float inputs its loss receives."""
    init, loss = objective.init, objective.loss

    def init64(key, sample_batch):
        return precision.cast_floats(init(key, sample_batch), jnp.float64)

    def loss64(params, batch_stats, objective_state, batch, key, step, *, group):
        batch = precision.cast_floats(batch, jnp.float64)
        return loss(params, batch_stats, objective_state, batch, key, step, group=group)

    return dataclasses.replace(objective, init=init64, loss=loss64)


# --- the initial state --------------------------------------------------------------------


def init_state(objective, optimizers, sample, seed: int, loaded=None, frozen=()) -> TrainState:
    """The state before step 0: initial parameters, optimizer states and objective state.

    ``loaded``, ``{"params": {module: tree}, "batch_stats": {module: tree}}`` from
    `load_init_from`, replaces those modules' initial values before the optimizers start.
    """
    init_key, rng = jax.random.split(jax.random.PRNGKey(seed))
    params, batch_stats, objective_state = objective.init(init_key, sample)
    if loaded:
        params = {**params, **loaded["params"]}
        batch_stats = {**batch_stats, **loaded["batch_stats"]}
    opt_state = {
        group: optimizers[group].init({m: params[m] for m in modules})
        for group, modules in parameter_groups(objective, params, frozen).items()
    }
    return TrainState(jnp.int32(0), params, batch_stats, opt_state, objective_state, rng)


def module_pairs(init_from) -> list[tuple[str, str]]:
    """``init_from.modules`` as (module of this run, module of the source run) pairs:
    ``"encoder"`` loads the source's encoder into this run's encoder; ``"stage2=encoder"``
    loads it into ``stage2``."""
    pairs = []
    for item in init_from.modules:
        target, _, source = str(item).partition("=")
        pairs.append((target.strip(), (source or target).strip()))
    return pairs


def load_init_from(config, abstract_params, abstract_stats) -> dict | None:
    """The parameters (and batch statistics) that ``config.init_from`` names, from another
    run's checkpoint, checked against this run's shapes; None when nothing is named.

    ``init_from``: ``workdir`` (a training workdir), ``step`` (0: its latest checkpoint),
    ``modules`` (names, or ``target=source`` pairs) and ``frozen`` (those modules never move:
    no gradient, no optimizer state, batch statistics kept).
    """
    init_from = config.get("init_from")
    if not init_from or not init_from.get("workdir"):
        return None
    from ssl_jax.checkpoint import Checkpoints

    workdir = os.path.expanduser(init_from.workdir)
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        raise UserError(
            f"init_from.workdir {workdir} has no checkpoints/; name a finished training workdir."
        )
    pairs = module_pairs(init_from)
    if not pairs:
        raise UserError("init_from.modules is empty; name the modules to load, e.g. ('encoder',).")
    checkpoints = Checkpoints(directory, keep=1_000_000, read_only=True)
    try:
        steps = checkpoints.all_steps()
        step = init_from.step or (max(steps) if steps else None)
        if step not in steps:
            raise UserError(
                f"init_from: no checkpoint {step} in {directory} (available: {steps or 'none'})."
            )
        sources = sorted({source for _, source in pairs})
        raw = checkpoints.restore_modules(step, sources)
    finally:
        checkpoints.close()
    loaded = {"params": {}, "batch_stats": {}}
    for target, source in pairs:
        if source not in raw["params"]:
            raise UserError(
                f"init_from: {workdir} has no module {source!r} (it has "
                f"{', '.join(raw['available'])})."
            )
        if target not in abstract_params:
            raise UserError(
                f"init_from: this run has no module {target!r} (it has "
                f"{', '.join(abstract_params)})."
            )
        want = jax.tree.map(lambda x: (x.shape, x.dtype), abstract_params[target])
        have = jax.tree.map(lambda x: (x.shape, x.dtype), raw["params"][source])
        if want != have:
            raise UserError(
                f"init_from: module {source!r} of {workdir} does not fit this run's {target!r} "
                "(different architecture); use the same model config for that module."
            )
        loaded["params"][target] = raw["params"][source]
        if target in abstract_stats:
            loaded["batch_stats"][target] = raw["batch_stats"].get(source, {})
    return loaded
