"""Deep autoencoder: an encoder, a low-dimensional code and a decoder trained to reconstruct.

Notes 001 §3.2.3 (eq. 13), 004 (deep autoencoders, Hinton & Salakhutdinov 2006), 000
(self-supervision by compression, ``min E||x − g(f(x))||²``).

Modules: ``encoder`` (the evaluated representation h = f(x)), ``bottleneck`` (a linear map to
the code c = W h + b of ``code_dim`` dimensions, the compression that rules out the identity
solution) and ``decoder`` (x̂ = g(c), pixel logits): an MLP (``decoder="mlp"``, hidden
widths ``decoder_hidden_dims``), or convolutional (``decoder="conv"``: a Dense layer to a 4×4
map of ``decoder_width`` channels, then ×2 upsamplings with 3×3 convolutions up to the image,
`ssl_jax.models.conv_decoder.CodeConvDecoder`).

Variants, by config (`ssl_jax.corruption`):
- **denoising** (notes 002): ``corruption`` ``"gaussian"`` (σ = ``corruption_level``),
  ``"masking"`` or ``"salt_and_pepper"`` (fraction ν = ``corruption_level``); the encoder sees
  x̃, the loss compares g(f(x̃)) with the clean x, weighting the error on corrupted pixels by
  ``corrupted_weight`` (α) and on the others by ``clean_weight`` (β).
- **sparse** (notes 004): ``sparsity`` ``"l1"`` adds λ·(1/B)Σ|c| on the code; ``"kl"`` passes
  the code through a sigmoid and adds λ·Σ_j KL(ρ ‖ ρ̂_j) with ρ = ``sparsity_target``;
  λ = ``sparsity_weight``.
- **contractive** (notes 004; Rifai et al. 2011): ``contraction`` ``"exact"`` or
  ``"projection"`` adds λ·(1/B)Σ_b ‖∂c_b/∂x_b‖²_F, the squared Frobenius norm of the Jacobian
  of the code with respect to the encoder's input, λ = ``contraction_weight``: exactly, at the
  cost of ``code_dim`` reverse-mode passes, or estimated from ``contraction_projections``
  random ±1 directions at the cost of that many forward-mode passes
  (`ssl_jax.corruption.jacobian_frobenius_exact` / ``_projected``). The Jacobian is per
  example, so the encoder must not use batch norm (``model.name="mlp"`` with
  ``batch_norm=False``, or ``"linear"``).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssl_jax.corruption import (
    CONTRACTIONS,
    CORRUPTIONS,
    SPARSITY_PENALTIES,
    corrupt,
    jacobian_frobenius_exact,
    jacobian_frobenius_projected,
    kl_sparsity,
    l1_sparsity,
    weighted_reconstruction_error,
)
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.models import MLPDecoder, build_encoder
from ssl_jax.models.conv_decoder import CodeConvDecoder
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, apply_module, init_module
from ssl_jax.precision import at_least_float32

RECONSTRUCTION_LOSSES = ("mse", "bernoulli")
DECODERS = ("mlp", "conv")

# The config block ``objective.name=autoencoder`` switches to (ssl_jax.config.switch_block).
DEFAULTS = dict(
    code_dim=64,
    decoder="mlp",
    decoder_hidden_dims=(512,),  # decoder="mlp"
    decoder_width=64,  # decoder="conv": channels of its first map, halved at each upsampling
    reconstruction="bernoulli",
    corruption="none",
    corruption_level=0.0,
    corrupted_weight=1.0,
    clean_weight=1.0,
    sparsity="none",
    sparsity_weight=0.0,
    sparsity_target=0.05,
    contraction="none",
    contraction_weight=0.0,
    contraction_projections=4,
)


def per_pixel_error(logits, images, kind):
    """``"mse"``: (x − σ(ℓ))², the squared error of notes 001 eq. 13; ``"bernoulli"``:
    −[x log σ(ℓ) + (1 − x) log(1 − σ(ℓ))], the cross-entropy for intensities in [0, 1] (004:
    binary units). ``logits`` are the decoder outputs before the sigmoid."""
    logits = at_least_float32(logits)
    if kind == "mse":
        return jnp.square(images - jax.nn.sigmoid(logits))
    return optax.sigmoid_binary_cross_entropy(logits, images)


def reconstruction_loss(logits, images, kind):
    """Per-image reconstruction error summed over pixels, averaged over the batch:
    (1/B) Σ_b Σ_p err_bp (`per_pixel_error`).

    Args:
      logits: [B, H, W, C] decoder outputs before the sigmoid.
      images: [B, H, W, C] targets in [0, 1].
    """
    per_pixel = per_pixel_error(logits, images, kind)
    return per_pixel.reshape(per_pixel.shape[0], -1).sum(axis=-1).mean()


def check_variant(cfg) -> None:
    """One-line errors for settings outside the variants this objective implements."""
    choices = {
        "reconstruction": RECONSTRUCTION_LOSSES,
        "decoder": DECODERS,
        "corruption": CORRUPTIONS,
        "sparsity": SPARSITY_PENALTIES,
        "contraction": CONTRACTIONS,
    }
    for field, allowed in choices.items():
        if cfg[field] not in allowed:
            raise UserError(f"objective.{field} must be one of {allowed}, got {cfg[field]!r}.")
    if cfg["corruption"] != "none" and not cfg["corruption_level"] > 0:
        raise UserError(
            f"objective.corruption={cfg['corruption']!r} needs objective.corruption_level > 0 "
            f"(σ of the noise or the fraction of pixels), got {cfg['corruption_level']}."
        )
    if cfg["corruption"] in ("masking", "salt_and_pepper") and cfg["corruption_level"] >= 1:
        raise UserError(
            f"objective.corruption_level is the fraction of pixels corrupted, in (0, 1); got "
            f"{cfg['corruption_level']}."
        )
    if cfg["contraction"] == "projection" and not cfg["contraction_projections"] >= 1:
        raise UserError(
            f"objective.contraction_projections is a number of random directions ≥ 1, got "
            f"{cfg['contraction_projections']}."
        )
    if cfg["sparsity"] == "kl" and not 0 < cfg["sparsity_target"] < 1:
        raise UserError(
            f"objective.sparsity_target is a mean activation ρ in (0, 1), got "
            f"{cfg['sparsity_target']}."
        )


@register_objective("autoencoder")
def make(config, input_spec) -> Objective:
    image_spec = require(input_spec, "images", "autoencoder", kind="images")
    # Fields a config leaves out take their defaults (configs written before a variant existed).
    cfg = {**DEFAULTS, **dict(config.objective)}
    check_variant(cfg)
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    if cfg["decoder"] == "conv":
        decoder = CodeConvDecoder(tuple(image_spec.shape), width=cfg["decoder_width"], dtype=dtype)
    else:
        decoder = MLPDecoder(
            image_spec.shape, hidden_dims=tuple(cfg["decoder_hidden_dims"]), dtype=dtype
        )
    bottleneck = nn.Dense(cfg["code_dim"], dtype=dtype)

    def code_of(params, h):
        code = bottleneck.apply({"params": params["bottleneck"]}, h)
        return jax.nn.sigmoid(code) if cfg["sparsity"] == "kl" else code

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, code_key, dec_key = jax.random.split(key, 3)
        enc_params, enc_stats = init_module(encoder, enc_key, images)
        if cfg["contraction"] != "none" and enc_stats:
            raise UserError(
                f"objective.contraction={cfg['contraction']!r} differentiates each example's code "
                f"by its own input, and model {config.model.name!r} uses batch norm, which "
                "couples the examples; use model.name='mlp' with model.batch_norm=False, or "
                "model.name='linear'."
            )
        h = encoder.apply({"params": enc_params, "batch_stats": enc_stats}, images, train=False)
        code_params = bottleneck.init(code_key, h)["params"]
        dec_params, _ = init_module(decoder, dec_key, bottleneck.apply({"params": code_params}, h))
        params = {"encoder": enc_params, "bottleneck": code_params, "decoder": dec_params}
        return params, {"encoder": enc_stats}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step, group
        images = batch["images"]
        corrupted, mask = corrupt(key, images, cfg["corruption"], cfg["corruption_level"])
        h, enc_stats = apply_module(encoder, params, batch_stats, "encoder", corrupted, train=True)
        code = code_of(params, h)
        logits = decoder.apply({"params": params["decoder"]}, code, train=True)
        if cfg["corruption"] == "none":
            reconstruction = reconstruction_loss(logits, images, cfg["reconstruction"])
        else:
            reconstruction = weighted_reconstruction_error(
                per_pixel_error(logits, images, cfg["reconstruction"]),
                mask,
                cfg["corrupted_weight"],
                cfg["clean_weight"],
            )
        mse = jnp.square(images - jax.nn.sigmoid(at_least_float32(logits))).mean()
        metrics = {"pixel_mse": mse}
        value = reconstruction
        if cfg["sparsity"] != "none":
            penalty = (
                l1_sparsity(code)
                if cfg["sparsity"] == "l1"
                else kl_sparsity(code, cfg["sparsity_target"])
            )
            value = reconstruction + cfg["sparsity_weight"] * penalty
            metrics |= {"reconstruction": reconstruction, "sparsity_penalty": penalty}
            code = at_least_float32(code)
            if cfg["sparsity"] == "l1":  # the fraction of code units away from 0
                metrics["active_fraction"] = jnp.mean(jnp.abs(code) > 1e-2)
            else:  # the mean activation, which the penalty pulls to ρ
                metrics["mean_activation"] = jnp.mean(code)
        if cfg["contraction"] != "none":

            def code_fn(x):  # examples independent: the encoder has no batch statistics
                return code_of(params, encoder.apply({"params": params["encoder"]}, x, train=True))

            if cfg["contraction"] == "exact":
                penalty = jacobian_frobenius_exact(code_fn, corrupted)
            else:
                penalty = jacobian_frobenius_projected(
                    code_fn, corrupted, jax.random.fold_in(key, 1), cfg["contraction_projections"]
                )
            value = value + cfg["contraction_weight"] * penalty
            metrics |= {"reconstruction": reconstruction, "jacobian_frobenius": penalty}
        metrics["loss"] = value
        return value, LossOutput({"encoder": enc_stats}, metrics)

    def pictures(params, batch_stats, images, key):
        """Held-out images over their reconstructions (batch norm with its running averages)."""
        del key
        h, _ = apply_module(encoder, params, batch_stats, "encoder", images, train=False)
        logits = decoder.apply({"params": params["decoder"]}, code_of(params, h), train=False)
        return {"reconstructions": jnp.stack([images, jax.nn.sigmoid(logits)])}

    return Objective(name="autoencoder", init=init, loss=loss, pictures=pictures)
