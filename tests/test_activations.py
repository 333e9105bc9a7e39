"""`ssl_jax.models.activations.relu`: jax.nn.relu's values and gradients, computed once by XLA."""

import re

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.models.activations import relu

SPECIAL = np.array([-np.inf, -3.0, -1e-30, -0.0, 0.0, 1e-30, 2.5, np.inf, np.nan], np.float32)


def test_relu_values_and_gradients_are_jax_nn_relus():
    x = jnp.asarray(np.concatenate([SPECIAL, np.random.default_rng(0).normal(size=64)]))
    np.testing.assert_array_equal(jax.jit(relu)(x), jax.nn.relu(x))  # NaN stays NaN in both
    grad = jax.jit(jax.vmap(jax.grad(relu)))(x)
    np.testing.assert_array_equal(grad, jax.vmap(jax.grad(jax.nn.relu))(x))
    assert grad[4] == 0.0 and grad[6] == 1.0  # 0 at exactly 0, 1 above


def residual_chain_hlo(activation) -> str:
    """Optimised HLO of the weight gradient of relu(h + conv(h)) stacked four times."""

    def conv(h, w):
        nhwc = ("NHWC", "HWIO", "NHWC")  # the layout of ssl_jax's convolutions
        return jax.lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=nhwc)

    def loss(weights, x):
        h = activation(conv(x, weights[0]))
        for w in weights[1:]:
            h = activation(h + conv(h, w))
        return jnp.sum(h**2)

    weights = [jnp.full((3, 3, 8, 8), 0.01) for _ in range(4)]
    x = jnp.ones((4, 8, 8, 8))
    return jax.jit(jax.grad(loss)).lower(weights, x).compile().as_text()


def test_each_relu_is_computed_once_in_the_compiled_gradient():
    # The property the module exists for: XLA writes each ReLU's output once and every
    # consumer (the next convolution, the residual addition, the weight gradient) reads it.
    # jax.nn.relu's max(x, 0) is duplicated into its consumers along the residual chain.
    relu_tests = r"pred\[4,8,8,8\]\{[0-9,]+\} compare\(.*direction=LT"  # x < 0 in `relu`
    ours = re.findall(relu_tests, residual_chain_hlo(relu))
    maxima = re.findall(r"f32\[4,8,8,8\]\{[0-9,]+\} maximum\(", residual_chain_hlo(jax.nn.relu))
    assert len(ours) == 4
    assert len(maxima) > 8
