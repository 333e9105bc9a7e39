"""User-facing errors.

A `UserError` is a mistake in what the user asked for (a config key, a dataset, a shape). The
command-line entry points print its message as one line and exit with status 2, with no
traceback; tracebacks are kept for bugs in ssl_jax itself.
"""

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """A problem with the user's input; the message names it and says how to fix it."""


def close_matches(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix listing the choices closest to `name` (or '')."""
    matches = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UserError:
    """Error for a name that is not registered, with close matches and the full list."""
    choices = sorted(choices)
    return UserError(
        f"unknown {kind} {name!r}.{close_matches(name, choices)} Available: {', '.join(choices)}."
    )
