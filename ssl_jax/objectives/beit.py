"""BEiT-style masked image modelling (Bao et al. 2022): hide blocks of patches and predict the
discrete codes a frozen VQ tokenizer gives the whole image at those patches.

Notes 001 §3.3.1 (masked prediction, (6) BEiT): the image is cut into patches and discretised
by a separately trained tokenizer; 40% of the tokens are masked, the network sees the
continuous patches (the masked ones replaced by a mask embedding) and is trained to predict
the missing discrete tokens with a softmax over all possible tokens. Here:

1. **Tokenizer** (frozen): the encoder, ``pre_quantizer`` and codebook of a finished
   ``vq_vae`` run, loaded with ``config.init_from`` into the modules ``tokenizer_encoder``,
   ``tokenizer_pre_quantizer`` and ``tokenizer_codebook``. Each image's code grid
   t_b ∈ {0 … K−1}^N (`ssl_jax.quantize.nearest_code` of the deepest feature map) must be the
   ViT's patch grid: a small CNN halves the side once per stage, so patch size p needs
   log₂ p stages (``tokenizer.model.widths``: (32, 64) for patch 4 on 28×28 → 7×7 codes, on
   32×32 → 8×8). The tokenizer belongs to no parameter group: it never receives an update,
   and it runs in inference mode (batch-norm averages as loaded).
2. **Blockwise masking** (`ssl_jax.masks.blockwise_masks`, BEiT's algorithm): rectangles of
   at least ``min_mask_patches`` patches with aspect ratio in [0.3, 1/0.3] until
   round(``mask_ratio`` · N) patches are hidden (40%).
3. **Masked ViT input**: the hidden patches' embeddings are replaced by one learned mask
   embedding e_[M] (the position embedding is added to it as to any patch), the ViT runs on all
   N tokens, and a linear ``head`` maps each final patch token to K logits.
4. **Loss**, cross-entropy over the codebook on the hidden positions only:

       L = (1 / Σ_bi m_bi) Σ_bi m_bi · (−log softmax(W h_bi + c)[t_bi]),
           m_bi = 1 if patch i of image b is hidden

   Every term is per example, so the loss needs the global batch only for its two sums.

Before masking, each image gets a random resized crop (area in ``crop_scale``; () for none)
and, if ``flip``, a left-right flip; the tokenizer and the ViT see the same augmented image.

Modules: ``encoder`` (the ViT, read out as ``encoder``: its ``pool`` of the final tokens of
the whole, unmasked image), ``mask_token`` ({"embedding": [1, D]}), ``head`` and the three
tokenizer modules. A run without the tokenizer named in ``init_from`` is refused: the codes
of a random tokenizer are no target.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.masks import BLOCK_MIN_PATCHES, blockwise_masks
from ssl_jax.models import build_encoder
from ssl_jax.models.vit import ViT, resize_position_embedding, sincos_position_embedding
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, module_representation
from ssl_jax.objectives.mae import random_crops_and_flips
from ssl_jax.objectives.vq_vae import deepest_feature_map
from ssl_jax.precision import at_least_float32
from ssl_jax.quantize import code_counts, codebook_perplexity, nearest_code

DEFAULTS = dict(
    mask_ratio=0.4,
    min_mask_patches=BLOCK_MIN_PATCHES,
    # The vq_vae run the codes come from: its model config and codebook size, exactly.
    tokenizer=dict(
        model=dict(name="small_cnn", widths=(32, 64), convs_per_stage=1, pool="avg"),
        num_codes=64,
        code_dim=16,
    ),
    crop_scale=(0.2, 1.0),
    flip=True,
)

# The modules init_from fills from a vq_vae run, as "this run's module=that run's module".
TOKENIZER_MODULES = {
    "tokenizer_encoder": "encoder",
    "tokenizer_pre_quantizer": "pre_quantizer",
    "tokenizer_codebook": "codebook",
}
TRAINED_MODULES = ("encoder", "mask_token", "head")


def tokenizer_init_from() -> tuple[str, ...]:
    """``config.init_from.modules`` that load a vq_vae run as the tokenizer."""
    return tuple(f"{mine}={theirs}" for mine, theirs in TOKENIZER_MODULES.items())


def masked_token_cross_entropy(logits, codes, mask):
    """BEiT's loss: the cross-entropy of the codes under the logits, averaged over the hidden
    positions only, (1 / Σ_bi m_bi) Σ_bi m_bi · (−log softmax(ℓ_bi)[t_bi]).

    logits: [B, N, K]; codes: [B, N] int; mask: [B, N], 1 (or True) on hidden patches.
    """
    log_probs = jax.nn.log_softmax(at_least_float32(logits), axis=-1)
    nll = -jnp.take_along_axis(log_probs, codes[..., None], axis=-1)[..., 0]
    mask = mask.astype(nll.dtype)
    return jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def patch_position_embedding(encoder: ViT, encoder_params, grid_shape):
    """[N, D]: the position embedding the ViT adds to each patch token of ``grid_shape``."""
    if encoder.position == "sincos":
        position = sincos_position_embedding(grid_shape, encoder.dim)
    else:
        stored = encoder_params["patch_embed"]["position_embedding"]
        position = resize_position_embedding(stored, grid_shape)
    return position.reshape(-1, encoder.dim)


def encode_masked(encoder: ViT, encoder_params, mask_embedding, images, mask):
    """The ViT's final patch tokens [B, N, D] of ``images`` [B, H, W, C] with the patches of
    ``mask`` [B, N] (True on hidden) replaced by the mask embedding [1, D] plus their position
    embedding: nothing of a hidden patch's pixels enters the encoder."""
    variables = {"params": encoder_params}
    tokens = encoder.apply(variables, images, method="embed_patches")  # patches + positions
    grid_shape = (images.shape[1] // encoder.patch_size, images.shape[2] // encoder.patch_size)
    position = patch_position_embedding(encoder, encoder_params, grid_shape)
    hidden = (mask_embedding + position).astype(tokens.dtype)
    tokens = jnp.where(mask[..., None], hidden[None], tokens)
    return encoder.apply(variables, tokens, method="encode_tokens")[:, 1:]


def tokenizer_codes(tokenizer_encoder, pre_quantizer, params, batch_stats, images, model_name):
    """The frozen tokenizer's code of each patch: [B, H, W, C] → [B, N] int32, row-major over
    the code grid (the ViT's token order). Inference mode; no gradient reaches its modules."""
    params = jax.lax.stop_gradient(params)
    variables = {
        "params": params["tokenizer_encoder"],
        "batch_stats": jax.lax.stop_gradient(batch_stats.get("tokenizer_encoder", {})),
    }
    _, layers = tokenizer_encoder.apply(variables, images, train=False, return_layers=True)
    feature_map = deepest_feature_map(layers, model_name)
    z = pre_quantizer.apply({"params": params["tokenizer_pre_quantizer"]}, feature_map)
    codes = nearest_code(z, params["tokenizer_codebook"]["embedding"])
    return codes.reshape(codes.shape[0], -1)


def check_settings(cfg, num_patches: int) -> None:
    """One-line errors for settings BEiT cannot run with."""
    hidden = int(round(cfg.mask_ratio * num_patches))
    if not 0 < hidden < num_patches:
        raise UserError(
            f"beit's objective.mask_ratio={cfg.mask_ratio} hides {hidden} of {num_patches} "
            "patches; choose a ratio in (0, 1) that hides at least one and not all (BEiT: 0.4)."
        )
    if cfg.min_mask_patches < 1:
        raise UserError(
            f"beit's objective.min_mask_patches must be ≥ 1, got {cfg.min_mask_patches}."
        )
    if cfg.tokenizer.num_codes < 2 or cfg.tokenizer.code_dim < 1:
        raise UserError(
            "beit's objective.tokenizer needs num_codes ≥ 2 and code_dim ≥ 1 (those of the "
            f"vq_vae run), got {cfg.tokenizer.num_codes} and {cfg.tokenizer.code_dim}."
        )
    scale = tuple(cfg.crop_scale)
    if scale and not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
        raise UserError(
            f"beit's objective.crop_scale is (min, max) areas in (0, 1], or () for no crop; got "
            f"{scale}."
        )


def check_tokenizer_loaded(init_from) -> None:
    """The tokenizer must come from a trained vq_vae run through ``config.init_from``."""
    loaded = {str(m).partition("=")[0].strip() for m in (init_from or {}).get("modules", ())}
    missing = [m for m in TOKENIZER_MODULES if m not in loaded]
    if not (init_from or {}).get("workdir") or missing:
        raise UserError(
            "beit predicts the codes of a trained VQ tokenizer: train a vq_vae run first, then "
            f"set --config.init_from.workdir=<its workdir> with init_from.modules="
            f"{tokenizer_init_from()} (the beit configs set the modules)."
        )


def check_grids(code_grid, patch_grid, patch_size: int) -> None:
    if tuple(code_grid) != tuple(patch_grid):
        stages = int(math.log2(patch_size)) if patch_size > 0 else 0
        raise UserError(
            f"beit's tokenizer gives a {code_grid[0]}×{code_grid[1]} grid of codes but the ViT's "
            f"patch_size {patch_size} a {patch_grid[0]}×{patch_grid[1]} grid of patches; give "
            f"the tokenizer (and its vq_vae run) a model that downsamples by {patch_size}: a "
            f"small_cnn with {stages} stage(s), e.g. objective.tokenizer.model.widths="
            f"{(32, 64, 128, 256)[:stages]}."
        )


@register_objective("beit")
def make(config, input_spec) -> Objective:
    image_spec = require(input_spec, "images", "beit", kind="images")
    cfg = ml_collections.ConfigDict({**DEFAULTS, **config.objective.to_dict()})
    check_tokenizer_loaded(config.get("init_from"))
    dtype = jnp.dtype(config.compute_dtype)
    encoder = build_encoder(config.model, image_spec, dtype=dtype)
    if not isinstance(encoder, ViT):
        raise UserError(
            "beit replaces hidden patch tokens by a mask embedding and needs a ViT encoder; set "
            "--config.model.name=vit_tiny (and e.g. --config.model.patch_size=4)."
        )
    height, width, _ = image_spec.shape
    p = encoder.patch_size
    grid_shape = (height // p, width // p)
    num_patches = grid_shape[0] * grid_shape[1]
    check_settings(cfg, num_patches)
    num_codes, code_dim = cfg.tokenizer.num_codes, cfg.tokenizer.code_dim
    tokenizer_model = cfg.tokenizer.model
    tokenizer_encoder = build_encoder(tokenizer_model, image_spec, dtype=dtype)
    pre_quantizer = nn.Dense(code_dim, dtype=dtype)  # as vq_vae's, a 1×1 convolution
    head = nn.Dense(num_codes, dtype=dtype, kernel_init=nn.initializers.xavier_uniform())

    def tokenizer_map(images):
        variables = jax.eval_shape(
            lambda x: tokenizer_encoder.init(jax.random.key(0), x, train=False), images
        )
        _, layers = jax.eval_shape(
            lambda v, x: tokenizer_encoder.apply(v, x, train=False, return_layers=True),
            variables,
            images,
        )
        return deepest_feature_map(layers, tokenizer_model.name)

    abstract_images = jax.ShapeDtypeStruct((1, *image_spec.shape), jnp.float32)
    check_grids(tokenizer_map(abstract_images).shape[1:3], grid_shape, p)

    def codes_of(params, batch_stats, images):
        return tokenizer_codes(
            tokenizer_encoder, pre_quantizer, params, batch_stats, images, tokenizer_model.name
        )

    def init(key, sample_batch):
        images = sample_batch["images"]
        enc_key, tok_key, quant_key, code_key, head_key, mask_key = jax.random.split(key, 6)
        enc_params = encoder.init(enc_key, images, train=False)["params"]
        tok_variables = tokenizer_encoder.init(tok_key, images, train=False)
        _, layers = tokenizer_encoder.apply(tok_variables, images, train=False, return_layers=True)
        feature_map = deepest_feature_map(layers, tokenizer_model.name)
        init_codebook = jax.nn.initializers.variance_scaling(1.0, "fan_out", "uniform")
        params = {
            "encoder": enc_params,
            "mask_token": {
                "embedding": 0.02 * jax.random.truncated_normal(mask_key, -2, 2, (1, encoder.dim))
            },
            "head": head.init(head_key, jnp.zeros((1, encoder.dim), dtype))["params"],
            "tokenizer_encoder": tok_variables["params"],
            "tokenizer_pre_quantizer": pre_quantizer.init(quant_key, feature_map)["params"],
            "tokenizer_codebook": {
                "embedding": init_codebook(code_key, (num_codes, code_dim), jnp.float32)
            },
        }
        batch_stats = {}
        if tok_variables.get("batch_stats"):
            batch_stats["tokenizer_encoder"] = tok_variables["batch_stats"]
        return params, batch_stats, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step, group
        aug_key, mask_key = jax.random.split(key)
        images = random_crops_and_flips(batch["images"], aug_key, cfg.crop_scale, cfg.flip)
        codes = codes_of(params, batch_stats, images)
        mask = blockwise_masks(
            mask_key,
            images.shape[0],
            grid_shape,
            mask_ratio=cfg.mask_ratio,
            min_patches=cfg.min_mask_patches,
        )
        tokens = encode_masked(
            encoder, params["encoder"], params["mask_token"]["embedding"], images, mask
        )
        logits = head.apply({"params": params["head"]}, tokens)
        value = masked_token_cross_entropy(logits, codes, mask)
        hidden = mask.astype(jnp.float32)
        correct = (jnp.argmax(logits, axis=-1) == codes).astype(jnp.float32)
        metrics = {
            "loss": value,
            "masked_fraction": hidden.mean(),
            "accuracy": jnp.sum(correct * hidden) / jnp.maximum(hidden.sum(), 1.0),
            # How many codes the targets effectively use: near 1 means little to predict.
            "target_perplexity": codebook_perplexity(code_counts(codes, num_codes)),
        }
        return value, LossOutput({}, metrics)

    return Objective(
        name="beit",
        init=init,
        loss=loss,
        param_groups={"model": TRAINED_MODULES},
        representations={"encoder": module_representation(encoder)},
    )
