"""Objectives by name.

A new objective is one module (here or anywhere importable) that decorates a factory
``make(config, input_spec) -> Objective`` with ``@register_objective("name")``, plus a config
in ``experiments/``; see docs/objectives.md. Only the module of the objective asked for is
imported: ``ssl_jax/objectives/<name>.py`` for an objective of this package, so a module that
fails to import breaks only its own runs. An objective that lives elsewhere names its module in
the config, ``config.objective.module = "my_package.my_objective"``: a dotted module name
importable from ``PYTHONPATH`` (or the working directory), imported first.
"""

import importlib
import pkgutil

from ssl_jax.errors import UserError, unknown_name
from ssl_jax.objectives.base import (
    LossOutput,
    NoState,
    Objective,
    Representation,
    apply_module,
    init_module,
    keep_state,
    module_representation,
)

_FACTORIES = {}
_NOT_OBJECTIVES = ("base", "targets", "siamese")


def register_objective(name: str):
    """Decorator registering ``make(config, input_spec) -> Objective`` under ``name``."""

    def decorate(factory):
        _FACTORIES[name] = factory
        return factory

    return decorate


def _module_names() -> list[str]:
    return [
        info.name for info in pkgutil.iter_modules(__path__) if info.name not in _NOT_OBJECTIVES
    ]


def _import(module_path: str) -> None:
    try:
        importlib.import_module(module_path)
    except Exception as err:  # noqa: BLE001 - any failure of a user's module is reported
        raise UserError(
            f"cannot import objective module {module_path!r}: {type(err).__name__}: {err}"
        ) from None


def registered_objectives() -> list[str]:
    """Every objective of this package, by name; modules that fail to import are left out."""
    for module_name in _module_names():
        try:
            importlib.import_module(f"{__name__}.{module_name}")
        except Exception:  # noqa: BLE001, S112 - listing names must not fail on one module
            continue
    return sorted(_FACTORIES)


def get_factory(config):
    """The factory of ``config.objective.name``, importing only the module that defines it."""
    name = config.objective.name
    module_path = config.objective.get("module")
    if module_path:
        _import(module_path)
    elif name not in _FACTORIES and name in _module_names():
        _import(f"{__name__}.{name}")
    if name not in _FACTORIES:
        # An objective defined in a module of another name: look through the package.
        known = registered_objectives()
        if name not in _FACTORIES:
            raise unknown_name("objective", name, known)
    return _FACTORIES[name]


def make_objective(config, input_spec) -> Objective:
    """Builds the objective named by ``config.objective.name`` for data of ``input_spec``
    (the decoded element spec, `ssl_jax.data.spec.decoded_spec`).

    An objective that names no ``representations`` is read out through its ``encoder`` module,
    built from ``config.model`` on ``images``.
    """
    import dataclasses

    import jax.numpy as jnp

    objective = get_factory(config)(config, dict(input_spec))
    if objective.representations is None:
        from ssl_jax.models import build_encoder

        encoder = build_encoder(
            config.model, input_spec.get("images"), dtype=jnp.dtype(config.compute_dtype)
        )
        objective = dataclasses.replace(
            objective, representations={"encoder": module_representation(encoder)}
        )
    return objective


__all__ = [
    "LossOutput",
    "NoState",
    "Objective",
    "Representation",
    "apply_module",
    "init_module",
    "keep_state",
    "make_objective",
    "module_representation",
    "register_objective",
    "registered_objectives",
]
