"""CMC: one encoder per view of an image — its channel groups — contrasted across views.

Notes 001 §3.4.1 (3) (CMC: views in orthogonal dimensions such as luminance and chrominance,
a separate encoder per view, one shared embedding space, the views' features averaged or
concatenated at test time) and §3.4.2 (InfoNCE). Tian, Krishnan & Isola, "Contrastive
Multiview Coding", 2020.

Views (``views``):

- ``"lab"`` (colour images): v₁ = L, the lightness of CIE Lab (scaled to [0, 1]), and v₂ = ab,
  its two colour-opponent channels (scaled by 1/110 to about [−1, 1]); sRGB with the D65
  white (`rgb_to_lab`), as the paper's L–ab split of ImageNet.
- ``"halves"`` (grey images, which have one channel to split): v₁ = the top ⌊H/2⌋ rows,
  v₂ = the bottom rows. They share no pixel — as L and ab share no channel — but do share
  what the image shows (which digit, in which hand), which is what the contrast keeps.
- ``"auto"`` (the default): ``"lab"`` for 3 channels, ``"halves"`` otherwise.

Crops (``crops``): ``"shared"`` cuts both views from one random crop of each image (the first
view of ``config.aug``), as the paper does for L and ab; ``"separate"`` cuts v₁ from the first
and v₂ from the second, independently cropped view. ``"auto"``: shared for Lab, separate for
halves — two halves of one crop meet along a row of pixels, and matching that seam would
solve the contrast without learning what the digit is (measured on the MNIST subset, 100
steps, one seed: kNN 0.940 / linear 0.960 with separate crops, 0.923 / 0.953 with one).

Modules: ``view1_encoder`` and ``view2_encoder`` (each built from ``config.model`` for its
view's shape) and their projection heads ``view1_projector``, ``view2_projector`` into one
D-dimensional space. With z₁ = g₁(f₁(v₁)), z₂ = g₂(f₂(v₂)) unit-normalised over the B images of
the global batch,

    L = ½ [ L_NCE(z₁ → z₂) + L_NCE(z₂ → z₁) ],
    L_NCE(a → b) = (1/B) Σ_i −log [ exp(a_iᵀb_i / τ) / Σ_j exp(a_iᵀb_j / τ) ]
    (`ssl_jax.losses.batch_info_nce`, each direction),

so each view's embedding picks its image's other view among the batch's B, and ``mi_bound`` =
log B − L. The paper draws its negatives from a memory bank (NCE or softmax over 16,384
stored features); in-batch negatives are the softmax form of the same loss.

Representation ``encoder``: [f₁(v₁), f₂(v₂)], the two encoders' features concatenated
(dimension d₁ + d₂), as the paper evaluates L and ab together.
"""

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.losses import batch_info_nce, batch_info_nce_logits, mi_lower_bound
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, Representation
from ssl_jax.objectives.siamese import apply_chain, build_chain, collapse_metrics, init_chain
from ssl_jax.precision import at_least_float32

VIEWS = ("auto", "lab", "halves")
CROPS = ("auto", "shared", "separate")

# The config block ``objective.name=cmc`` switches to (ssl_jax.config.switch_block): the
# paper's τ = 0.07 and 128-d embedding, with SimCLR's MLP head rather than a linear one.
DEFAULTS = dict(
    temperature=0.07,
    views="auto",
    crops="auto",
    projector=dict(hidden_dims=(512,), output_dim=128),
)

# sRGB (linear) → CIE XYZ, D65 white (IEC 61966-2-1), and the D65 white point.
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE = (0.950456, 1.0, 1.088754)
_DELTA = 6.0 / 29.0


def rgb_to_lab(rgb):
    """sRGB in [0, 1] [..., 3] → CIE Lab [..., 3]: L in [0, 100], a and b about [−110, 110]."""
    rgb = at_least_float32(jnp.asarray(rgb))
    linear = jnp.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ jnp.asarray(_RGB_TO_XYZ, rgb.dtype).T / jnp.asarray(_WHITE, rgb.dtype)
    f = jnp.where(
        xyz > _DELTA**3,
        jnp.cbrt(jnp.maximum(xyz, _DELTA**3)),
        xyz / (3 * _DELTA**2) + 4.0 / 29.0,
    )
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def resolve_views(views: str, channels: int) -> str:
    """The split ``views`` names for images of ``channels`` channels (``auto`` resolved)."""
    if views not in VIEWS:
        raise UserError(f"objective.views must be one of {list(VIEWS)}, got {views!r}.")
    if views == "auto":
        return "lab" if channels == 3 else "halves"
    if views == "lab" and channels != 3:
        raise UserError(
            f"objective.views='lab' needs RGB images, got {channels} channel(s); use "
            "--config.objective.views=halves for grey images."
        )
    return views


def resolve_crops(crops: str, views: str, num_global: int) -> str:
    """``crops`` with ``auto`` resolved: one shared crop for Lab, separate ones for halves."""
    if crops not in CROPS:
        raise UserError(f"objective.crops must be one of {list(CROPS)}, got {crops!r}.")
    if crops == "auto":
        crops = "shared" if views == "lab" else "separate"
    if crops == "separate" and num_global < 2:
        raise UserError(
            "objective.crops='separate' needs two global views; set --config.aug.num_global=2."
        )
    return crops


def channel_views(images, views: str) -> tuple[jax.Array, jax.Array]:
    """[B, H, W, C] in [0, 1] → the two views (see the module docstring), ``views`` resolved."""
    if views == "lab":
        lab = rgb_to_lab(images)
        return lab[..., :1] / 100.0, lab[..., 1:] / 110.0
    half = images.shape[1] // 2
    return images[:, :half], images[:, half:]


def view_shapes(image_shape, views: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    height, width, _ = image_shape
    if views == "lab":
        return (height, width, 1), (height, width, 2)
    return (height // 2, width, image_shape[2]), (height - height // 2, width, image_shape[2])


@register_objective("cmc")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "cmc", kind="images")
    views = resolve_views(cfg.views, image_spec.shape[-1])
    crops = resolve_crops(cfg.crops, views, config.aug.num_global)
    shapes = view_shapes(image_spec.shape, views)
    chains = tuple(
        build_chain(config, shape, projector=cfg.projector, prefix=f"view{index}_")
        for index, shape in enumerate(shapes, start=1)
    )
    encoders = tuple(chain[0] for chain in chains)  # (name, module) of each view's encoder

    def init(key, sample_batch):
        params, batch_stats = {}, {}
        split = channel_views(sample_batch["images"], views)
        for chain, x, chain_key in zip(chains, split, jax.random.split(key), strict=True):
            chain_params, chain_stats = init_chain(chain, chain_key, x)
            params.update(chain_params)
            batch_stats.update(chain_stats)
        return params, batch_stats, NoState()

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del state, step, group
        augmented = augment.make_views(batch["images"], key, config.aug)
        if crops == "shared":
            split = channel_views(augmented[0], views)
        else:
            split = (channel_views(augmented[0], views)[0], channel_views(augmented[1], views)[1])
        embeddings, new_stats = [], {}
        for chain, x in zip(chains, split, strict=True):
            outputs, stats = apply_chain(chain, params, batch_stats, x, train=True)
            embeddings.append(outputs[chain[-1][0]])
            new_stats.update(stats)
        z1, z2 = embeddings
        value = (
            batch_info_nce(z1, z2, cfg.temperature) + batch_info_nce(z2, z1, cfg.temperature)
        ) / 2
        logits, labels = batch_info_nce_logits(z1, z2, cfg.temperature)
        metrics = {
            "loss": value,
            "contrastive_acc": jnp.mean(jnp.argmax(logits, -1) == labels),
            # Each direction picks among B candidates (notes 001 §3.4.2).
            "mi_bound": mi_lower_bound(value, z1.shape[0]),
            # Both views' embeddings live in one space: diagnose them together.
            **collapse_metrics(jnp.concatenate([z1, z2])),
        }
        return value, LossOutput(new_stats, metrics, {"view1": z1, "view2": z2})

    def features(params, batch_stats, images, return_layers=False):
        parts, layers = [], {}
        for (name, module), x in zip(encoders, channel_views(images, views), strict=True):
            variables = {"params": params[name], "batch_stats": batch_stats.get(name, {})}
            h, named = module.apply(variables, x, train=False, return_layers=True)
            parts.append(h.reshape(h.shape[0], -1).astype(jnp.float32))
            layers.update({f"{name}/{layer}": value for layer, value in named.items()})
        return layers if return_layers else jnp.concatenate(parts, axis=-1)

    def layers(params, batch_stats, images):
        return features(params, batch_stats, images, return_layers=True)

    representation = Representation(
        fn=features,
        input="images",
        modules=tuple(name for name, _ in encoders),
        layers=layers,
    )
    return Objective("cmc", init, loss, representations={"encoder": representation})
