"""Disentangling content from style: instance-normalised content, AdaIN-injected style, and an
adversarial style classifier on the content code.

Notes 004 (disentangling content and speaker: instance normalisation, AdaIN, an adversarial
speaker classifier) and 003 (content vs style); the image form of the one-shot voice
conversion of Chou et al. 2019. Two encoders and a decoder:

- ``content_encoder`` E_c: convolutions each followed by **instance normalisation** without
  learned scale or shift (every channel of every image to zero mean and unit variance over
  its positions), which removes the per-image channel statistics that carry style. Its output,
  a spatial map of ``content_channels`` channels c = E_c(x), is the content code. With
  ``normalize_input`` it normalises the image itself first, so a style that scales each
  channel of the image (a colour) never reaches its first convolution.
- ``style_encoder`` E_s: convolutions, global average pooling and a Dense to a small vector
  s = E_s(x').
- ``decoder`` G: from c, convolutions and upsampling, each followed by **AdaIN** with s:
  AdaIN(h, s) = γ(s) ⊙ (h − μ(h)) / σ(h) + β(s), μ, σ per channel over positions, γ and β
  affine maps of s. Style enters only through these per-channel statistics.

The style encoder reads x', another image of the batch with the same ``style_label``
(``font``) as x (itself if it has no other), so s cannot carry x's content. The reconstruction
is Bernoulli cross-entropy on pixels, L_rec = −Σ_p [x log x̂ + (1 − x) log(1 − x̂)] / P with
x̂ = G(E_c(x), E_s(x')). A ``classifier`` C predicts the style label from c; it is trained in
its own parameter group to minimise CE(C(c), y_style) with c fixed, while the autoencoder's
group minimises

    L = L_rec + λ · CE(C(E_c(x)), uniform),   λ = ``adversarial_weight``,

pushing C's prediction from the content code toward the uniform distribution: content that
does not tell the style. Representations: ``content`` (c flattened) and ``style`` (s of the
image itself); the readout probes both on every label, and the disentangled result is
content → character high, font near chance, and style the reverse.

With ``style_categories`` K > 0 the style code is one of K categories instead of a vector (for
a style that takes a few discrete values: a colour, a font). E_s then gives K logits ℓ; in
training the decoder receives the straight-through hard Gumbel-softmax sample of ℓ (Jang et
al. 2017; `ssl_jax.quantize`, τ = 1), one-hot forward and the soft sample's gradient backward,
and the representation is one_hot(argmax ℓ). Left alone, a categorical code collapses to one
category; as wav2vec 2.0's diversity loss does for its codebooks, the loss adds

    δ · (log K − H(q̄)),   q̄ = the batch's mean of softmax(ℓ),   δ = ``diversity_weight``,

zero when the batch uses the K categories equally (logged: ``category_perplexity`` = exp H(q̄),
K at best). A continuous code keeps whatever its features carry of x' beyond the style (the
amount of ink of a digit changes every channel's mean) at no cost to the reconstruction; a
category holds nothing but which category it is.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, Representation
from ssl_jax.precision import at_least_float32
from ssl_jax.quantize import gumbel_softmax_sample, usage_entropy

DEFAULTS = dict(
    style_label="font",
    widths=(32, 64),
    content_channels=8,
    style_dim=8,
    adversarial_weight=0.1,
    classifier_hidden=128,
    normalize_input=False,
    style_categories=0,
    diversity_weight=0.1,
)


def instance_norm(x, eps: float = 1e-5):
    """[B, H, W, C]: each channel of each image to zero mean and unit variance over H, W."""
    mean = x.mean(axis=(1, 2), keepdims=True)
    variance = x.var(axis=(1, 2), keepdims=True)
    return (x - mean) * jax.lax.rsqrt(variance + eps)


class ContentEncoder(nn.Module):
    """x [B, H, W, C] → content map [B, H/2^(n−1), W/2^(n−1), channels]: conv → IN → ReLU per
    width, then a 1×1 conv to ``channels`` and IN (a narrow code: 8×8×8 for 32×32 glyphs).

    ``normalize_input`` instance-normalises x itself first. An image whose channels are one
    picture times a colour (c_k·g) then reaches the first convolution as the same IN(g) in every
    channel of c_k > 0, whatever the colour; without it the first convolution's filters mix
    the channels into colour-dependent filters whose traces IN cannot remove."""

    widths: tuple[int, ...]
    channels: int
    normalize_input: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        if self.normalize_input:
            x = instance_norm(x)
        for index, width in enumerate(self.widths):
            stride = 1 if index == 0 else 2
            x = nn.Conv(width, (3, 3), strides=stride, dtype=self.dtype)(x)
            x = nn.relu(instance_norm(x))
        return instance_norm(nn.Conv(self.channels, (1, 1), dtype=self.dtype)(x))


class StyleEncoder(nn.Module):
    """x → style vector [B, style_dim]: strided convolutions, global average pooling, Dense."""

    widths: tuple[int, ...]
    style_dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for width in self.widths:
            x = nn.relu(nn.Conv(width, (3, 3), strides=2, dtype=self.dtype)(x))
        return nn.Dense(self.style_dim, dtype=self.dtype)(x.mean(axis=(1, 2)))


class AdaIN(nn.Module):
    """AdaIN(h, s) = γ(s) ⊙ IN(h) + β(s), γ = 1 + Dense(s) so that s = 0 leaves IN(h)."""

    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h, style):
        channels = h.shape[-1]
        params = nn.Dense(2 * channels, dtype=self.dtype)(style)[:, None, None, :]
        scale, shift = jnp.split(params, 2, axis=-1)
        return (1.0 + scale) * instance_norm(h) + shift


class StyleDecoder(nn.Module):
    """(content map, style) → pixel logits [B, H, W, channels]: per width (reversed), conv →
    AdaIN → ReLU, then ×2 nearest upsampling between the widths; a final 3×3 conv."""

    widths: tuple[int, ...]
    channels: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, content, style):
        h = content
        for index, width in enumerate(reversed(self.widths)):
            if index > 0:
                b, height, w, c = h.shape
                h = jax.image.resize(h, (b, 2 * height, 2 * w, c), "nearest")
            h = nn.Conv(width, (3, 3), dtype=self.dtype)(h)
            h = nn.relu(AdaIN(dtype=self.dtype)(h, style))
        return nn.Conv(self.channels, (3, 3), dtype=self.dtype)(h)


def same_label_partners(key, labels):
    """For each example, a random other example of the batch with the same label (itself when
    it has none): the index array [B]."""
    batch = labels.shape[0]
    others = (labels[:, None] == labels[None, :]) & ~jnp.eye(batch, dtype=bool)
    scores = jnp.where(others, jax.random.uniform(key, (batch, batch)), -1.0)
    partner = scores.argmax(axis=1)
    return jnp.where(others.any(axis=1), partner, jnp.arange(batch))


@register_objective("content_style")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "content_style", kind="images")
    height, width, channels = image_spec.shape
    widths = tuple(cfg.widths)
    scale = 2 ** (len(widths) - 1)
    if height % scale or width % scale:
        raise UserError(
            f"content_style halves the {height}×{width} images {len(widths) - 1} times: they "
            f"must be divisible by {scale}; use fewer objective.widths."
        )
    style_spec = input_spec.get(cfg.style_label)
    if style_spec is None or style_spec.kind != "label":
        labels = [name for name, spec in input_spec.items() if spec.kind == "label"]
        raise UserError(
            f"content_style needs the style label {cfg.style_label!r} in the data, which has "
            f"labels {labels}; set --config.objective.style_label (glyphs: font)."
        )
    num_styles = style_spec.num_values
    dtype = jnp.dtype(config.compute_dtype)
    content_encoder = ContentEncoder(
        widths, cfg.content_channels, bool(cfg.get("normalize_input", False)), dtype=dtype
    )
    categories = int(cfg.get("style_categories", 0))
    if categories < 0 or categories == 1:
        raise UserError(
            f"content_style objective.style_categories must be 0 (a style vector) or at least "
            f"2, got {categories}."
        )
    diversity_weight = float(cfg.get("diversity_weight", 0.1))
    style_encoder = StyleEncoder(widths, categories or cfg.style_dim, dtype=dtype)
    decoder = StyleDecoder(widths, channels, dtype=dtype)
    classifier = nn.Sequential(
        [nn.Dense(cfg.classifier_hidden, dtype=dtype), nn.relu, nn.Dense(num_styles, dtype=dtype)]
    )

    def flat(content):
        return content.reshape(content.shape[0], -1)

    def style_code(params, images):
        """The style vector, or with ``style_categories`` the one-hot of the likeliest one."""
        style = style_encoder.apply({"params": params["style_encoder"]}, images)
        if not categories:
            return style
        return jax.nn.one_hot(jnp.argmax(style, axis=-1), categories, dtype=style.dtype)

    def init(key, sample_batch):
        images = sample_batch["images"]
        keys = jax.random.split(key, 4)
        content_params = content_encoder.init(keys[0], images)["params"]
        content = content_encoder.apply({"params": content_params}, images)
        style_params = style_encoder.init(keys[1], images)["params"]
        style = style_code({"style_encoder": style_params}, images)
        params = {
            "content_encoder": content_params,
            "style_encoder": style_params,
            "decoder": decoder.init(keys[2], content, style)["params"],
            "classifier": classifier.init(keys[3], flat(content))["params"],
        }
        return params, {}, NoState()

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del objective_state, step
        images, styles = batch["images"], batch[cfg.style_label]
        content = content_encoder.apply({"params": params["content_encoder"]}, images)
        if group == "classifier":  # C learns from the content code as it is
            content = jax.lax.stop_gradient(content)
        style_logits = classifier.apply({"params": params["classifier"]}, flat(content))
        style_logits = at_least_float32(style_logits)
        style_ce = optax.softmax_cross_entropy_with_integer_labels(style_logits, styles).mean()
        accuracy = jnp.mean(style_logits.argmax(-1) == styles)
        if group == "classifier":
            metrics = {"loss": style_ce, "style_accuracy": accuracy}
            return style_ce, LossOutput(batch_stats, metrics)
        partners = same_label_partners(key, styles)
        style = style_encoder.apply({"params": params["style_encoder"]}, images[partners])
        metrics = {}
        if categories:  # a hard sample of the category, and the batch's spread over them
            probabilities = jax.nn.softmax(at_least_float32(style), axis=-1).mean(axis=0)
            entropy = usage_entropy(probabilities)
            metrics["category_perplexity"] = jnp.exp(entropy)
            diversity = jnp.log(categories) - entropy
            noise_key = jax.random.fold_in(key, 1)
            style = gumbel_softmax_sample(noise_key, style, 1.0, hard=True).astype(style.dtype)
        logits = decoder.apply({"params": params["decoder"]}, content, style)
        reconstruction = optax.sigmoid_binary_cross_entropy(at_least_float32(logits), images).mean()
        # Cross-entropy of the classifier's prediction against the uniform distribution.
        confusion = -jax.nn.log_softmax(style_logits).mean()
        value = reconstruction + cfg.adversarial_weight * confusion
        if categories:
            value = value + diversity_weight * diversity
        metrics |= {
            "loss": value,
            "reconstruction": reconstruction,
            "confusion": confusion,
            "style_accuracy": accuracy,
        }
        return value, LossOutput(batch_stats, metrics)

    def content_code(params, batch_stats, images):
        del batch_stats
        content = content_encoder.apply({"params": params["content_encoder"]}, images)
        return flat(content).astype(jnp.float32)

    def style_representation(params, batch_stats, images):
        del batch_stats
        return style_code(params, images).astype(jnp.float32)

    def pictures(params, batch_stats, images, key):
        """Style transfer: row 0 the held-out images; each further row decodes every image's
        content with the style of one image (its first cell)."""
        del batch_stats, key
        count = min(images.shape[0], 8)
        images = images[:count]
        content = content_encoder.apply({"params": params["content_encoder"]}, images)
        styles = style_code(params, images)

        def with_style(s):
            tiled = jnp.broadcast_to(s, (count, s.shape[-1]))
            return jax.nn.sigmoid(decoder.apply({"params": params["decoder"]}, content, tiled))

        rows = jax.vmap(with_style)(styles)
        return {"style_transfer": jnp.concatenate([images[None], rows], axis=0)}

    representations = {
        "content": Representation(fn=content_code, modules=("content_encoder",)),
        "style": Representation(fn=style_representation, modules=("style_encoder",)),
    }
    groups = {
        "autoencoder": ("content_encoder", "style_encoder", "decoder"),
        "classifier": ("classifier",),
    }
    return Objective(
        name="content_style",
        init=init,
        loss=loss,
        param_groups=groups,
        representations=representations,
        pictures=pictures,
    )
