"""ssl_jax: representation learning in JAX/Flax.

The training path, in reading order: `ssl_jax.data` → `ssl_jax.augment` → `ssl_jax.models` →
`ssl_jax.objectives` → `ssl_jax.train`; then `ssl_jax.evaluation` and `ssl_jax.similarity`.
"""

from ssl_jax._xla_flags import apply_default_xla_flags

apply_default_xla_flags()  # before any JAX computation starts a backend

__version__ = "0.1.0"
__all__ = ["Encoder", "load_encoder"]


def __getattr__(name):
    # Imported on first use: `import ssl_jax.similarity` (or any light subpackage) then does not
    # pull in orbax, the models and the trainer's dependencies.
    if name in __all__:
        from ssl_jax import encoder

        return getattr(encoder, name)
    raise AttributeError(f"module 'ssl_jax' has no attribute {name!r}")
