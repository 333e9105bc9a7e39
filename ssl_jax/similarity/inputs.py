"""Shared plumbing for the similarity metrics: input checks, dtype, precision, centring.

Conventions every metric follows (notes 001 §2.2):

- A representation is a matrix ``x: [n, p]``, one row per example; two representations being
  compared hold the same ``n`` examples in the same order (``p1 != p2`` is fine).
- Compute dtype: float32, or float64 when ``jax_enable_x64`` is on (inputs of any real dtype are
  converted). Every matmul runs at ``Precision.HIGHEST``: otherwise GPUs use TF32 and TPUs
  bf16 passes for float32 matmuls, which costs three decimal digits.
- Bad input: on concrete arrays (the normal, eager call) problems raise `UserError` with a
  one-line message. Inside a user's ``jit``/``vmap`` the data are tracers and cannot be
  inspected, so only shape problems raise; non-finite input or a constant representation makes
  the metric return NaN instead.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.errors import UserError, unknown_name


def float_dtype():
    """The compute dtype: float64 under ``jax_enable_x64``, float32 otherwise."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def as_float(x) -> jax.Array:
    """`x` as a jnp array of the compute dtype."""
    return jnp.asarray(x, dtype=float_dtype())


def highest_precision(fn: Callable) -> Callable:
    """Traces `fn` with float32 matmuls at full precision (no TF32 / bf16 passes)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapped


def jit_kernel(fn: Callable = None, *, static_argnames=()) -> Callable:
    """``jax.jit`` at highest matmul precision; the form every metric kernel is compiled in."""
    if fn is None:
        return functools.partial(jit_kernel, static_argnames=static_argnames)
    return jax.jit(highest_precision(fn), static_argnames=static_argnames)


def centre_columns(x: jax.Array) -> jax.Array:
    """X̃ = HX: subtracts each feature's mean over the examples. x: [n, p] -> [n, p].

    The first row is subtracted before the mean, which changes nothing mathematically but makes
    a constant representation centre to exactly 0 and keeps large offsets from eating digits.
    """
    x = x - x[:1]
    return x - jnp.mean(x, axis=0, keepdims=True)


def usable(x: jax.Array) -> jax.Array:
    """Scalar bool: x is finite and not the same for every example (a metric is defined).

    x: a float array. One reduction, where two (all finite, any row differing) would each add
    kernels to every metric's compiled program: the summed |x - x[0]| is NaN when an entry is
    not finite, 0 when every row equals the first, and positive (or inf) otherwise.
    """
    spread = jnp.where(jnp.isfinite(x), jnp.abs(x - x[:1]), jnp.nan)
    return jnp.sum(spread) > 0


def is_concrete(*arrays) -> bool:
    """True when no argument is a tracer, i.e. values can be inspected and errors raised."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


@jax.jit
def _problems(x):
    return jnp.sum(~jnp.isfinite(x)), jnp.all(x == x[:1])


def _host_array(x) -> np.ndarray | None:
    """`x` as a NumPy array of the dtype JAX gives it, or None when it lives on an accelerator.

    Host data (NumPy input, or a jax array on the CPU backend, viewed without a copy) are
    checked in NumPy: the jitted check would be compiled anew for every input shape, which
    costs far more than the check itself at the sizes compared here.
    """
    if isinstance(x, jax.Array):
        return np.asarray(x) if all(d.platform == "cpu" for d in x.devices()) else None
    a = np.asarray(x)
    return a.astype(jax.dtypes.canonicalize_dtype(a.dtype), copy=False)


def _count_problems(x) -> tuple[int, bool]:
    """(number of NaN/inf entries, whether every example is the same) of concrete `x`."""
    host = _host_array(x)
    if host is None:
        num_bad, constant = _problems(x)
        return int(num_bad), bool(constant)
    return host.size - int(np.count_nonzero(np.isfinite(host))), bool(np.all(host == host[:1]))


def check_matrix(metric: str, x, arg: str = "x") -> None:
    """Raises UserError unless `x` is a 2-D [n, p] matrix with n, p >= 1."""
    shape = tuple(np.shape(x))
    if len(shape) != 2:
        hint = (
            f"a single feature is {arg}[:, None]"
            if len(shape) == 1
            else "flatten or pool conv maps first with sim.to_matrix(x, conv_rule)"
        )
        raise UserError(
            f"{metric}: {arg} must be a 2-D [n, p] matrix (rows = examples), got shape {shape}; "
            f"{hint}."
        )
    if 0 in shape:
        raise UserError(f"{metric}: {arg} is empty (shape {shape}); pass at least one feature.")


def check_values(metric: str, x, arg: str = "x") -> None:
    """On concrete input, raises UserError for NaN/inf entries or a constant representation."""
    if not is_concrete(x):
        return
    num_bad, constant = _count_problems(x)
    if num_bad:
        raise UserError(
            f"{metric}: {arg} contains {num_bad} NaN or inf entries; fix or drop those "
            "examples before comparing representations."
        )
    if constant:
        raise UserError(
            f"{metric}: {arg} is the same for every example (a constant representation), so its "
            "similarity is undefined; check the layer (dead units?) or leave it out."
        )


def check_pair(metric: str, x, y, min_examples: int = 2, why: str = "") -> None:
    """All checks for a metric of two representations x: [n, p1], y: [n, p2]."""
    check_matrix(metric, x, "x")
    check_matrix(metric, y, "y")
    n_x, n_y = np.shape(x)[0], np.shape(y)[0]
    if n_x != n_y:
        raise UserError(
            f"{metric}: x has {n_x} examples (rows) and y has {n_y}; both must hold the same "
            "examples in the same order."
        )
    check_examples(metric, n_x, min_examples, why)
    check_values(metric, x, "x")
    check_values(metric, y, "y")


def check_examples(metric: str, n: int, min_examples: int, why: str = "") -> None:
    if n < min_examples:
        reason = f" ({why})" if why else ""
        raise UserError(
            f"{metric}: needs at least {min_examples} examples{reason}, got {n}; "
            "pass more examples."
        )


def _flatten(a):
    return a.reshape(a.shape[0], -1)


def _spatial_mean(a):
    # NHWC (or any [n, *spatial, C]): average over the spatial axes, keep channels.
    return jnp.mean(a, axis=tuple(range(1, a.ndim - 1))) if a.ndim > 2 else a


CONV_RULES: dict[str, Callable] = {"flatten": _flatten, "mean": _spatial_mean}


def to_matrix(activation, conv_rule: str = "flatten") -> jax.Array:
    """A layer's activation as a representation matrix [n, p].

    activation: [n, p] (returned unchanged) or a conv map [n, H, W, C] (any number of
    spatial axes, channels last). ``conv_rule``:

    - ``"flatten"``: [n, H·W·C], every unit at every position is a feature (what Kornblith et
      al. 2019 compare, §6.1); wide, so CCA-type metrics need more than H·W·C examples.
    - ``"mean"``: [n, C], global average pooling over the spatial positions.
    """
    if conv_rule not in CONV_RULES:
        raise unknown_name("conv_rule", conv_rule, CONV_RULES)
    a = jnp.asarray(activation)
    if a.ndim < 2:
        raise UserError(
            f"a layer activation must be [n, ...] with at least 2 axes, got shape {a.shape}; "
            "a single feature is x[:, None]."
        )
    return CONV_RULES[conv_rule](a)
