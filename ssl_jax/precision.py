"""Numerical precision: the compute dtype, and the float64 exactness mode.

``config.compute_dtype`` is ``float32`` (default), ``bfloat16`` (activations; parameters and
losses stay float32) or ``float64``, the **exactness mode**: JAX's 64-bit mode is switched on,
and parameters, batch statistics, optimizer and objective state, activations and every
reduction are float64. Its purpose is proof, not speed: in float32, a sum taken over 8
devices' shards is rounded in another order than on one device, near-ties of ReLU and max-pool
then flip, and Adam turns the tiny gradient differences into full-size steps, so runs on
different device counts part after a few steps. In float64 those differences stay near 1e-16,
and runs on 1 device, 8 devices or several processes agree to 1e-9 after many steps — which
shows that the data-parallel step computes the same function as the single-device one.
"""

import jax
import jax.numpy as jnp

from ssl_jax.errors import UserError

COMPUTE_DTYPES = ("float32", "bfloat16", "float64")


def check_compute_dtype(compute_dtype: str) -> None:
    if compute_dtype not in COMPUTE_DTYPES:
        raise UserError(
            f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {compute_dtype!r}; "
            "float64 is the exactness mode (slow, for equality checks)."
        )


def configure(compute_dtype: str) -> None:
    """Switches JAX's 64-bit mode on for the exactness mode (before any float64 array is made)."""
    check_compute_dtype(compute_dtype)
    if compute_dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)


def at_least_float32(x):
    """``x`` in float32, or in float64 when it already is: where losses and statistics are
    reduced (bfloat16 activations are promoted; the exactness mode keeps float64)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def cast_floats(tree, dtype):
    """Every floating-point leaf of ``tree`` as ``dtype``; other leaves unchanged."""

    def cast(x):
        return x.astype(dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x

    return jax.tree.map(cast, tree)
