"""A Transformer encoder over token ids: [B, L] int32 → pooled features [B, dim].

Token embedding (``vocab_size`` rows; `ssl_jax.models.build_encoder` fills it from the
dataset's spec) plus a learned position embedding, then ``depth`` pre-norm blocks
``x + MHSA(LN(x))``, ``x + MLP(LN(x))`` (`ssl_jax.models.vit.EncoderBlock`), then a final
LayerNorm. Padding (id 0, `ssl_jax.data.spec.PAD_ID`) is masked out of attention as a key;
with ``causal=True`` position t attends only to positions ≤ t (a language-model encoder).

Pooling: ``"mean"`` averages the final tokens over the non-pad positions (a window that is all
padding pools to 0); ``"cls"`` prepends a learned CLS token, which every position may attend
to (with ``causal=True`` it sits at position 0, so it sees only itself: use ``"mean"``) and
returns it.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.data.spec import PAD_ID
from ssl_jax.errors import UserError
from ssl_jax.models.vit import MlpBlock

POOLS = ("mean", "cls")


class TokenBlock(nn.Module):
    """Pre-norm Transformer block with an attention mask: [B, T, D] → [B, T, D]."""

    num_heads: int
    mlp_ratio: float = 4.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask):
        y = nn.LayerNorm(dtype=self.dtype)(x)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            dtype=self.dtype,
            kernel_init=nn.initializers.xavier_uniform(),
            # Promotes bfloat16 to float32 for the softmax; float64 (the exactness mode) stays.
            force_fp32_for_softmax=jnp.finfo(self.dtype).bits < 32,
        )(y, y, mask=mask)
        x = x + y
        y = nn.LayerNorm(dtype=self.dtype)(x)
        return x + MlpBlock(int(x.shape[-1] * self.mlp_ratio), dtype=self.dtype)(y)


class TokenTransformer(nn.Module):
    """Transformer encoder of token windows [B, L] int32 (0 = padding) → features [B, dim].

    ``__call__(tokens, train=..., return_layers=True)`` also returns the named layers in
    network order: ``embed`` [B, T, dim] (token + position embedding), ``block1`` …
    ``block{depth}`` [B, T, dim], ``features`` [B, dim]; T = L, or L + 1 with the CLS token
    first (``pool="cls"``). ``method="encode_tokens"`` gives the final per-token states
    [B, T, dim] (for token-level heads such as masked language modelling).
    """

    vocab_size: int = 0  # filled from the dataset's spec by build_encoder
    max_length: int = 512  # rows of the position embedding
    dim: int = 128
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    causal: bool = False
    pool: str = "mean"  # "mean" | "cls"
    dtype: jnp.dtype = jnp.float32  # compute dtype; parameters stay float32

    def setup(self):
        self.token_embed = nn.Embed(
            self.vocab_size, self.dim, embedding_init=nn.initializers.normal(0.02)
        )
        self.position_embed = self.param(
            "position_embedding", nn.initializers.normal(0.02), (self.max_length, self.dim)
        )
        if self.pool == "cls":
            self.cls_token = self.param("cls_token", nn.initializers.zeros, (1, 1, self.dim))
        self.blocks = [
            TokenBlock(self.num_heads, self.mlp_ratio, dtype=self.dtype) for _ in range(self.depth)
        ]
        self.final_norm = nn.LayerNorm(dtype=self.dtype)

    def _embed(self, tokens):
        """tokens [B, L] → (embedded [B, T, dim], valid [B, T] bool)."""
        length = tokens.shape[1]
        x = self.token_embed(tokens) + self.position_embed[None, :length]
        x = x.astype(self.dtype)
        valid = tokens != PAD_ID
        if self.pool == "cls":
            cls = jnp.broadcast_to(self.cls_token, (tokens.shape[0], 1, self.dim))
            x = jnp.concatenate([cls.astype(self.dtype), x], axis=1)
            valid = jnp.concatenate([jnp.ones_like(valid[:, :1]), valid], axis=1)
        return x, valid

    def _attention_mask(self, valid):
        """[B, 1, T, T]: query q may attend key k when k is not padding (and k ≤ q if causal).

        A query at a padding position keeps itself as a key, so no softmax row is empty.
        """
        mask = nn.make_attention_mask(jnp.ones_like(valid), valid, dtype=bool)
        if self.causal:
            mask = nn.combine_masks(mask, nn.make_causal_mask(valid, dtype=bool), dtype=bool)
        length = valid.shape[1]
        return mask | jnp.eye(length, dtype=bool)[None, None]

    def encode_tokens(self, tokens, layers: dict | None = None):
        """[B, L] ids → ([B, T, dim] final LayerNorm'd token states, valid [B, T] bool)."""
        self.check_settings()
        x, valid = self._embed(tokens)
        if layers is not None:
            layers["embed"] = x
        mask = self._attention_mask(valid)
        for index, block in enumerate(self.blocks, start=1):
            x = block(x, mask)
            if layers is not None:
                layers[f"block{index}"] = x
        return self.final_norm(x), valid

    def __call__(self, tokens, *, train: bool, return_layers: bool = False):
        del train  # no dropout or batch norm: one function in both modes
        layers = {}
        h, valid = self.encode_tokens(tokens, layers)
        if self.pool == "cls":
            features = h[:, 0]
        else:
            weights = valid.astype(h.dtype)[..., None]
            features = (h * weights).sum(1) / jnp.maximum(weights.sum(1), 1.0)
        layers["features"] = features
        return (features, layers) if return_layers else features

    def check_settings(self):
        """Raises `UserError` for an unknown pool, an unset vocabulary or heads not dividing dim."""
        if self.pool not in POOLS:
            raise UserError(
                f"unknown token_transformer pool {self.pool!r}; set pool to one of {list(POOLS)}."
            )
        if self.vocab_size <= 0:
            raise UserError(
                "token_transformer has no vocab_size; use a token dataset (e.g. "
                "--config.dataset=lee) or set --config.model.vocab_size."
            )
        if self.dim % self.num_heads:
            raise UserError(
                f"token_transformer dim {self.dim} is not divisible by num_heads "
                f"{self.num_heads}; choose num_heads that divides dim."
            )

    def check_input_shape(self, shape: Sequence[int]):
        """Raises `UserError` unless the input is one window of token ids, shape (L,)."""
        self.check_settings()
        if len(shape) != 1:
            raise UserError(
                f"token_transformer takes token windows of shape (L,), got {tuple(shape)}; "
                "use a token dataset such as --config.dataset=lee."
            )
        extra = 1 if self.pool == "cls" else 0
        if shape[0] + extra > self.max_length:
            raise UserError(
                f"token_transformer max_length {self.max_length} is shorter than the windows "
                f"({shape[0] + extra} positions); set --config.model.max_length={shape[0] + extra}."
            )
