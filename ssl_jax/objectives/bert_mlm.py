"""BERT masked language modelling: predict selected tokens of a window from the rest of it.

Notes 001 §3.3 (denoising and masked prediction; BERT's 15 % with 80/10/10), Devlin et al.
2019. Each non-padding token of a window is *selected* with probability ``select_prob``
(15 %). A selected token is replaced by ``[MASK]`` with probability ``mask_prob`` (80 %), by a
word drawn uniformly from the vocabulary with probability ``random_prob`` (10 %), and left as
it is otherwise (10 %): the encoder cannot tell which unmasked tokens it will be asked about,
so it must keep a good state for every token. A bidirectional Transformer
(``config.model``, ``token_transformer``) reads the corrupted window, and the loss is the
cross-entropy of the original token at the selected positions S only:

    L = −(1/|S|) Σ_{(b,t) ∈ S} log softmax(E g(h_{b,t}) + c)[x_{b,t}],

with h the encoder's final token states, g = LayerNorm ∘ GELU ∘ Dense the prediction head and
E the encoder's input embedding table (tied, as in BERT), c a bias per word. Logged: ``loss``
(nats per selected token), ``accuracy`` (top-1 at the selected positions) and
``selected_fraction``.

The vocabulary's ``[MASK]`` (``Vocabulary.special["mask"]``; the ``lee`` corpus reserves id
1) is used when it has one; otherwise (caption vocabularies of TFDS datasets) the embedding
table gets one more row, id ``vocab_size``, for it. Random replacements are drawn from the
vocabulary's words, never from its reserved entries.

Modules: ``encoder`` (the Transformer, with the embedding table) and ``head``.
Representations: ``encoder`` (the mean of the final token states over the non-padding
tokens: the pooled readout) and ``embedding`` (the mean of the input embeddings of the
tokens; for one-word inputs, the word vectors that the word-similarity sets score, beside
word2vec's).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.data.spec import PAD_ID, require
from ssl_jax.errors import UserError
from ssl_jax.models import build_encoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import (
    LossOutput,
    NoState,
    Objective,
    Representation,
    init_module,
    module_representation,
)
from ssl_jax.objectives.word2vec import mean_embedding
from ssl_jax.precision import at_least_float32

DEFAULTS = dict(select_prob=0.15, mask_prob=0.8, random_prob=0.1)


def bert_corruption(
    key, tokens, *, mask_id, first_word, vocab_size, select_prob, mask_prob, random_prob
):
    """BERT's input corruption of token windows [B, L] int32 (0 = padding).

    Returns ``(corrupted, selected)``: each non-padding token is selected with probability
    ``select_prob``; a selected token becomes ``mask_id`` with probability ``mask_prob``, a
    word drawn uniformly from ids [``first_word``, ``vocab_size``) with probability
    ``random_prob``, and stays itself otherwise. ``selected`` [B, L] bool marks the positions
    the loss scores, whatever became of them.
    """
    select_key, action_key, word_key = jax.random.split(key, 3)
    selected = jax.random.bernoulli(select_key, select_prob, tokens.shape) & (tokens != PAD_ID)
    action = jax.random.uniform(action_key, tokens.shape)
    random_words = jax.random.randint(word_key, tokens.shape, first_word, vocab_size)
    corrupted = jnp.where(action < mask_prob, mask_id, tokens)
    corrupted = jnp.where(
        (action >= mask_prob) & (action < mask_prob + random_prob), random_words, corrupted
    )
    return jnp.where(selected, corrupted, tokens).astype(tokens.dtype), selected


def masked_token_loss(logits, targets, selected):
    """Mean cross-entropy (nats) and top-1 accuracy of ``logits`` [B, L, V] for ``targets``
    [B, L] over the ``selected`` positions [B, L] only (0 when none is selected)."""
    log_probs = jax.nn.log_softmax(at_least_float32(logits), axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    weights = selected.astype(log_probs.dtype)
    count = jnp.maximum(weights.sum(), 1.0)
    correct = (logits.argmax(-1) == targets).astype(log_probs.dtype)
    return (nll * weights).sum() / count, (correct * weights).sum() / count


class MaskedTokenHead(nn.Module):
    """Token states [B, L, D] → word logits [B, L, V] through the tied embedding table [V, D]."""

    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, states, embedding):
        h = nn.Dense(states.shape[-1], dtype=self.dtype)(states)
        h = nn.LayerNorm(dtype=self.dtype)(nn.gelu(h))
        bias = self.param("bias", nn.initializers.zeros, (embedding.shape[0],))
        return h @ embedding.T.astype(self.dtype) + bias


@register_objective("bert_mlm")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    tokens_spec = require(input_spec, "tokens", "bert_mlm", kind="tokens")
    probabilities = (cfg.select_prob, cfg.mask_prob, cfg.random_prob)
    if not (
        0 < cfg.select_prob <= 1
        and min(probabilities) >= 0
        and cfg.mask_prob + cfg.random_prob <= 1
    ):
        raise UserError(
            "bert_mlm needs 0 < objective.select_prob ≤ 1 and mask_prob + random_prob ≤ 1 "
            f"(each ≥ 0), got select_prob={cfg.select_prob}, mask_prob={cfg.mask_prob}, "
            f"random_prob={cfg.random_prob}."
        )
    if config.model.name != "token_transformer":
        raise UserError(
            f"bert_mlm predicts tokens from token states: set --config.model.name="
            f"token_transformer (got {config.model.name!r})."
        )
    vocabulary = tokens_spec.vocabulary
    special = dict(vocabulary.special) if vocabulary is not None else {}
    vocab_size = tokens_spec.num_values
    model_config = dict(config.model)
    if "mask" in special:
        mask_id = special["mask"]
    else:  # one more embedding row, the last, is [MASK]
        mask_id = vocab_size
        model_config["vocab_size"] = vocab_size + 1
    first_word = max([PAD_ID, *special.values()]) + 1
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(model_config, tokens_spec, dtype=dtype)
    head = MaskedTokenHead(dtype=dtype)

    def table(params):
        return params["encoder"]["token_embed"]["embedding"]

    def init(key, sample_batch):
        tokens = sample_batch["tokens"]
        enc_key, head_key = jax.random.split(key)
        enc_params, enc_stats = init_module(encoder, enc_key, tokens)
        states = jnp.zeros((*tokens.shape, encoder.dim), dtype)
        head_params = head.init(head_key, states, table({"encoder": enc_params}))["params"]
        return {"encoder": enc_params, "head": head_params}, {"encoder": enc_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step, group
        tokens = batch["tokens"]
        corrupted, selected = bert_corruption(
            key,
            tokens,
            mask_id=mask_id,
            first_word=first_word,
            vocab_size=vocab_size,
            select_prob=cfg.select_prob,
            mask_prob=cfg.mask_prob,
            random_prob=cfg.random_prob,
        )
        states, _ = encoder.apply({"params": params["encoder"]}, corrupted, method="encode_tokens")
        logits = head.apply({"params": params["head"]}, states, table(params))
        value, accuracy = masked_token_loss(logits, tokens, selected)
        valid = (tokens != PAD_ID).sum()
        metrics = {
            "loss": value,
            "accuracy": accuracy,
            "selected_fraction": selected.sum() / jnp.maximum(valid, 1),
        }
        return value, LossOutput(batch_stats, metrics)

    def embed(params, batch_stats, tokens):
        del batch_stats
        return mean_embedding(table(params), tokens)

    representations = {
        "encoder": module_representation(encoder, input="tokens"),
        "embedding": Representation(fn=embed, input="tokens", modules=("encoder",)),
    }
    return Objective(name="bert_mlm", init=init, loss=loss, representations=representations)
