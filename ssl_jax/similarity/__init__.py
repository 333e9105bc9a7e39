"""Representation similarity (notes 001 §2.2): RSA, CKA, CCA and relatives, all layer pairs.

``from ssl_jax import similarity as sim``. Every metric takes two representations of the same
n examples, ``x: [n, p1]`` and ``y: [n, p2]`` (rows are examples, p1 != p2 allowed), is a pure
jnp function (jit- and vmap-able) and returns a scalar:

- `linear_cka`, `rbf_cka` (optionally ``debiased``), `MinibatchCKA` for data beyond memory;
- `cca_correlations`, `r2_cca`, `mean_cca_rho`, `svcca`, `pwcca`, `r2_lr`;
- `rsa`;
- `all_pairs(metric, xs, ys)`: the [L1, L2] matrix over all layer pairs in one batched call;
  `to_matrix` turns conv maps into matrices (``conv_rule`` "flatten" or "mean").

Conventions (dtype, matmul precision, bad input) are in `ssl_jax.similarity.inputs`; the
measured tolerances and the layer-correspondence results are in docs/similarity.md.
"""

from ssl_jax.similarity.cca import (
    cca_correlations,
    mean_cca_rho,
    pwcca,
    r2_cca,
    r2_lr,
    svcca,
)
from ssl_jax.similarity.cka import MinibatchCKA, MinibatchCKAState, linear_cka, rbf_cka
from ssl_jax.similarity.inputs import CONV_RULES, to_matrix
from ssl_jax.similarity.pairs import all_pairs
from ssl_jax.similarity.rsm import RSM_KERNELS, rsa

__all__ = [
    "CONV_RULES",
    "RSM_KERNELS",
    "MinibatchCKA",
    "MinibatchCKAState",
    "all_pairs",
    "cca_correlations",
    "linear_cka",
    "mean_cca_rho",
    "pwcca",
    "r2_cca",
    "r2_lr",
    "rbf_cka",
    "rsa",
    "svcca",
    "to_matrix",
]
