"""Audio models: a strided 1-D convolutional encoder of raw waveforms, and causal context
networks over its frames (for CPC, `ssl_jax.objectives.cpc`).

Unlike the image encoders of the registry, which return one vector [B, D] per example,
`WaveformEncoder` returns a **sequence of frames** z [B, T', D]; objectives pool it over time
when they need one vector (CPC's representations mean-pool z_t and c_t).
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from ssl_jax.errors import UserError


class WaveformEncoder(nn.Module):
    """Raw waveform [B, T] float32 → frames z [B, T / Π strides, widths[-1]].

    A stack of 1-D convolutions, each followed by a per-frame LayerNorm over channels
    (``norm="layer"``; ``"none"`` for none) and a ReLU. CPC's encoder (van den Oord et al., 2018)
    has 5 convolutions with kernels (10, 8, 4, 4, 4) and strides (5, 4, 2, 2, 2), 160×
    downsampling: one frame every 10 ms at 16 kHz, each seeing a window of 465 samples (29 ms);
    the defaults keep its kernels and strides with 64 channels instead of 512, for CPUs. Each
    convolution is padded by kernel − stride samples (split evenly, the odd one at the end), so
    a waveform of T samples gives exactly T / Π strides frames when Π strides divides T.

    Layers (``return_layers=True``): ``"conv1"`` … ``"convN"``, each [B, T_i, widths[i]].
    """

    widths: Sequence[int] = (64, 64, 64, 64, 64)
    kernels: Sequence[int] = (10, 8, 4, 4, 4)
    strides: Sequence[int] = (5, 4, 2, 2, 2)
    norm: str = "layer"
    dtype: jnp.dtype = jnp.float32

    @property
    def downsampling(self) -> int:
        """Input samples per output frame: the product of the strides."""
        return math.prod(self.strides)

    @nn.compact
    def __call__(self, x, *, train: bool = False, return_layers: bool = False):
        del train  # no batch statistics or dropout
        self.check_settings()
        layers = {}
        h = x.astype(self.dtype)[..., None]  # [B, T, 1]
        for i, (width, kernel, stride) in enumerate(
            zip(self.widths, self.kernels, self.strides, strict=True), start=1
        ):
            extra = kernel - stride
            padding = [(extra // 2, extra - extra // 2)]
            h = nn.Conv(width, (kernel,), (stride,), padding, dtype=self.dtype, name=f"conv{i}")(h)
            if self.norm == "layer":
                h = nn.LayerNorm(dtype=self.dtype, name=f"norm{i}")(h)
            h = nn.relu(h)
            layers[f"conv{i}"] = h
        return (h, layers) if return_layers else h

    def check_settings(self):
        if not (len(self.widths) == len(self.kernels) == len(self.strides)) or not self.widths:
            raise UserError(
                f"conv1d_audio needs as many widths, kernels and strides (got {len(self.widths)}, "
                f"{len(self.kernels)}, {len(self.strides)}); give one of each per layer."
            )
        if any(k < s for k, s in zip(self.kernels, self.strides, strict=True)):
            raise UserError(
                f"conv1d_audio kernels {tuple(self.kernels)} must each be at least their stride "
                f"{tuple(self.strides)}; enlarge the kernels."
            )
        if self.norm not in ("layer", "none"):
            raise UserError(f"conv1d_audio norm must be 'layer' or 'none', got {self.norm!r}.")

    def check_input_shape(self, shape: Sequence[int]):
        """Raises `UserError` unless this encoder takes [B, T] waveforms of ``shape`` = (T,)."""
        self.check_settings()
        shape = tuple(shape)
        if len(shape) != 1:
            raise UserError(
                f"conv1d_audio takes waveforms of shape (T,) (one channel of samples), got "
                f"{shape}; use an audio dataset such as --config.dataset=speech."
            )
        if shape[0] < self.downsampling:
            raise UserError(
                f"conv1d_audio downsamples {self.downsampling}× but the waveforms have only "
                f"{shape[0]} samples; use longer audio or smaller strides."
            )


class GRUContext(nn.Module):
    """Autoregressive context c_t = GRU(z_≤t): frames [B, T', D] → [B, T', features].

    A unidirectional GRU run forward in time, so c_t depends on z_1 … z_t only (CPC's g_ar).
    """

    features: int = 64
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, z, *, train: bool = False):
        del train
        cell = nn.GRUCell(self.features, dtype=self.dtype, param_dtype=jnp.float32)
        # The carry in the compute dtype: the cell's own initial carry takes ``param_dtype``,
        # which would not match the float64 (exactness mode) or bfloat16 outputs of the step.
        carry = jnp.zeros((z.shape[0], self.features), self.dtype)
        return nn.RNN(cell, name="gru")(z.astype(self.dtype), initial_carry=carry)


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """[length, dim] sine/cosine position codes (Vaswani et al., 2017): any length, no table."""
    position = np.arange(length)[:, None]
    frequency = np.exp(-np.log(10000.0) * np.arange(0, dim, 2) / dim)[None, :]
    codes = np.zeros((length, dim), np.float32)
    codes[:, 0::2] = np.sin(position * frequency)
    codes[:, 1::2] = np.cos(position * frequency[:, : dim // 2])
    return codes


class CausalTransformerContext(nn.Module):
    """Autoregressive context by causal self-attention: frames [B, T', D] → [B, T', features].

    A linear map to ``features``, sinusoidal positions, then ``depth`` pre-LayerNorm blocks of
    masked multi-head self-attention (position t attends to positions ≤ t) and an MLP, and a
    final LayerNorm. Only attention mixes time steps, and its mask keeps c_t a function of z_≤t.
    """

    features: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, z, *, train: bool = False):
        del train
        if self.features % self.num_heads:
            raise UserError(
                f"the transformer context's features ({self.features}) must be divisible by "
                f"num_heads ({self.num_heads})."
            )
        length = z.shape[1]
        h = nn.Dense(self.features, dtype=self.dtype, name="input")(z.astype(self.dtype))
        h = h + jnp.asarray(sinusoidal_positions(length, self.features), self.dtype)
        mask = nn.make_causal_mask(jnp.ones(z.shape[:2], jnp.int32))  # [B, 1, T', T']
        for i in range(self.depth):
            y = nn.LayerNorm(dtype=self.dtype, name=f"block{i}_norm1")(h)
            y = nn.MultiHeadDotProductAttention(
                num_heads=self.num_heads, dtype=self.dtype, name=f"block{i}_attention"
            )(y, y, mask=mask)
            h = h + y
            y = nn.LayerNorm(dtype=self.dtype, name=f"block{i}_norm2")(h)
            y = nn.Dense(self.features * self.mlp_ratio, dtype=self.dtype, name=f"block{i}_mlp1")(y)
            y = nn.Dense(self.features, dtype=self.dtype, name=f"block{i}_mlp2")(nn.gelu(y))
            h = h + y
        return nn.LayerNorm(dtype=self.dtype, name="final_norm")(h)
