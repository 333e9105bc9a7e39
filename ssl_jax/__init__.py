"""ssl_jax: representation learning in JAX/Flax.

The training path, in reading order: `ssl_jax.data` → `ssl_jax.augment` → `ssl_jax.models` →
`ssl_jax.objectives` → `ssl_jax.train`; then `ssl_jax.evaluation` and `ssl_jax.similarity`.
"""

from ssl_jax._xla_flags import apply_default_xla_flags

apply_default_xla_flags()  # before any JAX computation starts a backend

from ssl_jax.encoder import Encoder, load_encoder  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Encoder", "load_encoder"]
