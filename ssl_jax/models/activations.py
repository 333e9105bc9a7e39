"""ReLU written so that XLA keeps its output instead of recomputing it.

`relu` computes exactly what ``flax.linen.relu`` (``jax.nn.relu``) computes, values and
gradients, subgradient 0 at 0 included. It differs in how XLA's fusion pass sees it:

``jax.nn.relu`` lowers to ``max(x, 0)``, which XLA counts as "effectively unary" (one large
operand) and therefore free to duplicate into every consumer. In a residual network the
residual stream ``relu(shortcut + branch)`` has three consumers: the next convolution, the
next block's addition, and, in the backward pass, the transpose XLA:CPU inserts before every
convolution's weight gradient. XLA fuses the whole chain of additions, batch norms and ReLUs
back to the stage's first block into each such transpose, and the transpose then recomputes
three or four batch norms with strided reads of every convolution output in the stage. In the
ResNet-18 SimCLR step at batch 64 on a 2-core CPU those transposes took 945 ms of a 2.6 s
step.

``where(x < 0, 0, x)`` reads two large operands (``x`` and the comparison), so XLA duplicates
it only where it can fuse it into every consumer, and the convolution is not fusible: the
ReLU's output is written once and each transpose reads it. The same step: transposes 289 ms,
step 2.2 s (docs/performance.md). NaN passes through as in ``max``. On GPUs and TPUs the
convolutions' gradients need no such transposes; the function is the same there.
"""

import jax
import jax.numpy as jnp


@jax.custom_jvp
def relu(x: jax.Array) -> jax.Array:
    """max(x, 0), elementwise; the gradient is 1 where x > 0 and 0 elsewhere (0 at x = 0)."""
    return jnp.where(x < 0, jnp.zeros_like(x), x)


# jax.nn.relu's rule: the subgradient at exactly 0 is 0. It matters here: with a zero-initialised
# last batch norm, a residual block starts as relu(x + 0) with many exact zeros in x.
relu.defjvps(lambda tangent, _, x: jnp.where(x > 0, tangent, jnp.zeros_like(tangent)))
