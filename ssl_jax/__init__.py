"""ssl_jax: representation learning in JAX/Flax.

The training path, in reading order: `ssl_jax.data` → `ssl_jax.augment` → `ssl_jax.models` →
`ssl_jax.objectives` → `ssl_jax.train`; then `ssl_jax.evaluation` and `ssl_jax.similarity`.
"""

from ssl_jax.encoder import Encoder, load_encoder

__version__ = "0.1.0"
__all__ = ["Encoder", "load_encoder"]
