"""Objectives by name. Each module in this package registers its objectives on import.

A new objective is one module here (or anywhere importable) that decorates a factory
``make(config, image_shape) -> Objective`` with ``@register_objective("name")``, plus a config
in ``experiments/``; see docs/objectives.md. Modules of this package are imported on first
lookup, so adding a file is enough; an objective that lives elsewhere names its module in the
config, ``config.objective.module = "my_package.my_objective"``, which is imported first.
"""

import importlib
import pkgutil

from ssl_jax.errors import UserError, unknown_name
from ssl_jax.objectives.base import LossOutput, Objective, apply_module, init_module, keep_state

_FACTORIES = {}


def register_objective(name: str):
    """Decorator registering ``make(config, image_shape) -> Objective`` under ``name``."""

    def decorate(factory):
        _FACTORIES[name] = factory
        return factory

    return decorate


def _import_package_modules() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


def registered_objectives() -> list[str]:
    _import_package_modules()
    return sorted(_FACTORIES)


def make_objective(config, image_shape) -> Objective:
    """Builds the objective named by ``config.objective.name`` for images of ``image_shape``."""
    name = config.objective.name
    module_path = config.objective.get("module")
    if module_path:
        try:
            importlib.import_module(module_path)
        except ImportError as err:
            raise UserError(f"cannot import objective module {module_path!r}: {err}.") from None
    _import_package_modules()
    if name not in _FACTORIES:
        raise unknown_name("objective", name, _FACTORIES)
    return _FACTORIES[name](config, tuple(image_shape))


__all__ = [
    "LossOutput",
    "Objective",
    "apply_module",
    "init_module",
    "keep_state",
    "make_objective",
    "register_objective",
    "registered_objectives",
]
