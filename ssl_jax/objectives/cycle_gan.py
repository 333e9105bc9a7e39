"""CycleGAN: unpaired translation between two image domains, two generators, two discriminators.

Notes 003, "Cycle-GAN / 循环一致性 (Cycle Consistency)" (after "GAN 的缺点: 数据非配对问题"):
a generator G: A → B and a generator F: B → A, each judged by a discriminator of its target
domain (the translation must look native, 对抗损失), and a cycle-consistency term (translating
there and back must give the input again, 循环一致性: F(G(a)) ≈ a and G(F(b)) ≈ b), which is
what lets two unpaired collections train a translation at all (Zhu et al. 2017, §3). With
a ~ domain A, b ~ domain B and D_A, D_B logits, each step first updates both discriminators,
then both generators against the updated ones:

    discriminators:  L_D = L_real(D_B(b)) + L_fake(D_B(G(a))) + L_real(D_A(a)) + L_fake(D_A(F(b)))
    generators:      L_GF = L_gen(D_B(G(a))) + L_gen(D_A(F(b))) + λ·L_cyc + λ_id·L_id
    L_cyc = E_a[‖F(G(a)) − a‖₁] + E_b[‖G(F(b)) − b‖₁]      (Zhu et al. 2017, eq. 2)
    L_id  = E_a[‖F(a) − a‖₁]    + E_b[‖G(b) − b‖₁]         (§5.2, "identity mapping loss")

‖·‖₁ is the mean absolute difference over an image's pixels; λ = ``cycle_weight`` (10, the
paper's) and λ_id = ``identity_weight`` (0.5 λ in the paper's photo ↔ painting runs; 0
turns it off). The adversarial terms per example, ``loss`` =

- ``"least_squares"`` (the paper's §4, after Mao et al. 2017): L_real(ℓ) = (ℓ − 1)²,
  L_fake(ℓ) = ℓ², L_gen(ℓ) = (ℓ − 1)²;
- ``"non_saturating"``: softplus(−ℓ), softplus(ℓ), softplus(−ℓ) (`ssl_jax.adversarial`);
- ``"hinge"``: max(0, 1 − ℓ), max(0, 1 + ℓ), −ℓ.

The paper's pool of 50 earlier translations shown to D is left out: D sees this step's.

Where the two domains come from, ``domains`` =

- ``"images_b"``: A is each example's ``images``, B its ``images_b`` (the ``digit_domains``
  dataset: an unrelated image of the other domain beside each one).
- ``"label"``: one stream of images whose ``labels`` says the domain, 0 = A and 1 = B (TFDS's
  ``cycle_gan/*`` read as ``trainA+trainB``). Every image goes through both generators and each
  term above is a mean over the examples of its domain only (a batch's A and B counts vary;
  a term with no example in the batch is 0).
- ``"inverted"``: B is the colour-inverted domain, 1 − x of the batch's images rolled by half
  a batch, so that an A image and the B image beside it are different examples (any
  single-image dataset, e.g. ``tfds:mnist``). Set ``identity_weight=0`` with it: G(b) = b
  pulls G towards the identity, away from the inversion.

Modules and groups: ``generator_ab`` (G) and ``generator_ba`` (F), `TranslationGenerator`s,
group ``generator``; ``discriminator_a``/``discriminator_b`` (`ConvDiscriminator` trunks) and
``discriminator_a_head``/``discriminator_b_head`` (`DiscriminatorHead`), group
``discriminator``; each group with its optimizer (``config.optim_groups.<group>``, else
``config.optim``). No module has batch norm (instance norm in G and F; none in D), so there
are no batch statistics and each example's terms depend on that example alone. ``config.model``
is not used.

Representations: ``generator_ab``, the encoder half of G (its ``bottleneck`` map, averaged
over positions: ``generator_widths[-1]`` numbers) on ``images``; with ``domains="images_b"``
also ``generator_ba``, F's, on ``images_b``. Pictures: ``translations_ab``, rows a, G(a),
F(G(a)) of held-out images, and ``translations_ba``, rows b, F(b), G(F(b)) (with
``"images_b"``, of the held-out ``images_b``).
"""

import jax
import jax.numpy as jnp

from ssl_jax.adversarial import PER_EXAMPLE_TERMS, real_probability
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.models.cycle_gan import TranslationGenerator
from ssl_jax.models.gan import ConvDiscriminator, DiscriminatorHead
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, NoState, Objective, Representation
from ssl_jax.precision import at_least_float32

DEFAULTS = dict(
    domains="images_b",
    generator_widths=(32, 64),
    residual_blocks=2,
    discriminator_widths=(32, 64),
    loss="least_squares",
    cycle_weight=10.0,
    identity_weight=5.0,
)

DOMAINS = ("images_b", "label", "inverted")
LOSSES = tuple(PER_EXAMPLE_TERMS)  # every game ssl_jax.adversarial defines terms for
GENERATORS = ("generator_ab", "generator_ba")
DISCRIMINATORS = (
    "discriminator_a",
    "discriminator_a_head",
    "discriminator_b",
    "discriminator_b_head",
)


# --- the losses, per example, and their weighted means -------------------------------------


def weighted_mean(values, weights):
    """Σ wᵢ·vᵢ / Σ wᵢ over the batch ([B] each; 0 when every weight is 0): the mean over the
    examples of one domain when ``weights`` marks them with 1."""
    values, weights = at_least_float32(values), at_least_float32(weights)
    return jnp.sum(weights * values) / jnp.maximum(jnp.sum(weights), 1.0)


def absolute_error(x, y):
    """‖x − y‖₁ of each example as the mean over its pixels: [B, H, W, C] twice → [B]."""
    diff = jnp.abs(at_least_float32(x) - at_least_float32(y))
    return diff.reshape(diff.shape[0], -1).mean(axis=1)


def cycle_consistency_loss(
    a, b, g_of_a, f_of_b, translate_ab, translate_ba, weights_a=None, weights_b=None
):
    """L_cyc = E_a[‖F(G(a)) − a‖₁] + E_b[‖G(F(b)) − b‖₁] (Zhu et al. 2017, eq. 2), with
    G = ``translate_ab`` and F = ``translate_ba``, given the first translations ``g_of_a`` =
    G(a) and ``f_of_b`` = F(b) (the adversarial terms need them too); each mean over its
    domain's examples (``weights_*``, 1 for every example when not given). Zero exactly when
    F inverts G on the a's and G inverts F on the b's."""
    weights_a = jnp.ones(a.shape[0]) if weights_a is None else weights_a
    weights_b = jnp.ones(b.shape[0]) if weights_b is None else weights_b
    forward = absolute_error(translate_ba(g_of_a), a)
    backward = absolute_error(translate_ab(f_of_b), b)
    return weighted_mean(forward, weights_a) + weighted_mean(backward, weights_b)


# --- the two domains of a batch --------------------------------------------------------------


def inverted_domain(images):
    """Domain B of ``domains="inverted"``: 1 − x of the images rolled by half the batch, so that
    the i-th B image is the inversion of another example than the i-th A image."""
    return 1.0 - jnp.roll(images, images.shape[0] // 2, axis=0)


def split_domains(batch, domains: str):
    """``(a, b, weights_a, weights_b)`` of a batch: the A and B images the losses see, and
    which examples of each are of that domain (1) or not (0)."""
    a = batch["images"]
    ones = jnp.ones(a.shape[0], jnp.float32)
    if domains == "images_b":
        return a, batch["images_b"], ones, ones
    if domains == "inverted":
        return a, inverted_domain(a), ones, ones
    is_b = (batch["labels"] == 1).astype(jnp.float32)
    return a, a, (batch["labels"] == 0).astype(jnp.float32), is_b


def check_config(cfg, input_spec):
    """The A and B image specs of ``cfg``'s domains; one-line errors for settings that cannot
    work."""
    if cfg.domains not in DOMAINS:
        raise UserError(
            f"objective.domains must be one of {', '.join(DOMAINS)}, got {cfg.domains!r}; "
            "images_b for datasets with a second image array (digit_domains), label for one "
            "image stream labelled 0 = A / 1 = B (tfds:cycle_gan/*), inverted otherwise."
        )
    if cfg.loss not in LOSSES:
        raise UserError(
            f"objective.loss must be one of {', '.join(LOSSES)}, got {cfg.loss!r}; "
            "e.g. --config.objective.loss=least_squares."
        )
    if cfg.cycle_weight < 0 or cfg.identity_weight < 0 or cfg.residual_blocks < 0:
        raise UserError(
            "cycle_gan needs objective.cycle_weight, identity_weight and residual_blocks ≥ 0, "
            f"got {cfg.cycle_weight}, {cfg.identity_weight} and {cfg.residual_blocks}."
        )
    if not cfg.generator_widths or not cfg.discriminator_widths:
        raise UserError(
            "cycle_gan needs non-empty objective.generator_widths and discriminator_widths."
        )
    spec_a = require(input_spec, "images", "cycle_gan", kind="images")
    spec_b = spec_a
    if cfg.domains == "images_b":
        spec_b = require(input_spec, "images_b", "cycle_gan", kind="images")
    if cfg.domains == "label":
        labels = require(input_spec, "labels", "cycle_gan", kind="label")
        if labels.num_values is not None and labels.num_values > 2:
            raise UserError(
                f"objective.domains='label' reads labels 0 (A) and 1 (B), but the dataset's "
                f"labels have {labels.num_values} classes; use a two-domain dataset such as "
                "tfds:cycle_gan/horse2zebra:trainA+trainB."
            )
    if spec_a.shape[:2] != spec_b.shape[:2]:
        raise UserError(
            f"cycle_gan translates between images of one size, got {spec_a.shape} (A) and "
            f"{spec_b.shape} (B); resize one domain."
        )
    if cfg.identity_weight and spec_a.shape != spec_b.shape:
        raise UserError(
            f"the identity loss feeds each domain's images to the other's generator, which "
            f"needs equal shapes, got {spec_a.shape} (A) and {spec_b.shape} (B); set "
            "objective.identity_weight=0."
        )
    return spec_a, spec_b


@register_objective("cycle_gan")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    spec_a, spec_b = check_config(cfg, input_spec)
    dtype = jnp.dtype(config.compute_dtype)
    terms = PER_EXAMPLE_TERMS[cfg.loss]
    # Read once: the functions below do not follow later edits of the config.
    domains, cycle_weight, identity_weight = cfg.domains, cfg.cycle_weight, cfg.identity_weight
    widths, blocks = tuple(cfg.generator_widths), cfg.residual_blocks
    generators = {
        "generator_ab": TranslationGenerator(spec_b.shape[-1], widths, blocks, dtype),
        "generator_ba": TranslationGenerator(spec_a.shape[-1], widths, blocks, dtype),
    }
    generators["generator_ab"].check_input_shape(spec_a.shape)
    trunk = ConvDiscriminator(widths=tuple(cfg.discriminator_widths), dtype=dtype)
    trunk.check_input_shape(spec_a.shape)
    head = DiscriminatorHead(dtype=dtype)

    def init(key, sample_batch):
        a, b, _, _ = split_domains(sample_batch, domains)
        keys = dict(zip([*GENERATORS, *DISCRIMINATORS], jax.random.split(key, 6), strict=True))
        params = {}
        for name, images in (("generator_ab", a), ("generator_ba", b)):
            params[name] = generators[name].init(keys[name], images)["params"]
        for domain, images in (("a", a), ("b", b)):
            trunk_params = trunk.init(keys[f"discriminator_{domain}"], images, train=False)
            features = trunk.apply(trunk_params, images, train=False)
            head_params = head.init(keys[f"discriminator_{domain}_head"], features, train=False)
            params[f"discriminator_{domain}"] = trunk_params["params"]
            params[f"discriminator_{domain}_head"] = head_params["params"]
        return params, {}, NoState()

    def translate(params, name, images):
        """G (``generator_ab``) or F (``generator_ba``) of ``images``."""
        return generators[name].apply({"params": params[name]}, images.astype(dtype))

    def discriminate(params, domain, images):
        """D_A or D_B (``domain`` "a" or "b") of ``images``: logits [B]."""
        features = trunk.apply(
            {"params": params[f"discriminator_{domain}"]}, images.astype(dtype), train=False
        )
        return head.apply({"params": params[f"discriminator_{domain}_head"]}, features, train=False)

    def loss(params, batch_stats, objective_state, batch, key, step, *, group):
        del batch_stats, objective_state, key, step
        if group not in ("discriminator", "generator"):
            raise ValueError(f"cycle_gan has groups 'discriminator' and 'generator', not {group!r}")
        a, b, weights_a, weights_b = split_domains(batch, domains)
        fake_b = translate(params, "generator_ab", a)  # G(a)
        fake_a = translate(params, "generator_ba", b)  # F(b)
        if group == "discriminator":
            # Translations are D's data: no gradient reaches G or F from L_D.
            fake_a, fake_b = jax.lax.stop_gradient((fake_a, fake_b))
            # One pass of each D over its real and translated images (no batch norm in D).
            real_a_logits, fake_a_logits = jnp.split(
                discriminate(params, "a", jnp.concatenate([a, fake_a.astype(a.dtype)])), 2
            )
            real_b_logits, fake_b_logits = jnp.split(
                discriminate(params, "b", jnp.concatenate([b, fake_b.astype(b.dtype)])), 2
            )
            d_a = weighted_mean(terms.real(real_a_logits), weights_a)
            d_a += weighted_mean(terms.fake(fake_a_logits), weights_b)  # F(b), judged by D_A
            d_b = weighted_mean(terms.real(real_b_logits), weights_b)
            d_b += weighted_mean(terms.fake(fake_b_logits), weights_a)  # G(a), judged by D_B
            value = d_a + d_b
            metrics = {
                "loss": value,
                "discriminator_a": d_a,
                "discriminator_b": d_b,
                "real_a_probability": real_probability(real_a_logits),
                "real_b_probability": real_probability(real_b_logits),
            }
            return value, LossOutput({}, metrics)
        fake_a_logits = discriminate(params, "a", fake_a)
        fake_b_logits = discriminate(params, "b", fake_b)
        adversarial = weighted_mean(terms.generator(fake_b_logits), weights_a) + weighted_mean(
            terms.generator(fake_a_logits), weights_b
        )
        cycle = cycle_consistency_loss(
            a,
            b,
            fake_b,
            fake_a,
            lambda x: translate(params, "generator_ab", x),
            lambda x: translate(params, "generator_ba", x),
            weights_a,
            weights_b,
        )
        identity = jnp.zeros((), cycle.dtype)
        if identity_weight:
            identity = weighted_mean(
                absolute_error(translate(params, "generator_ba", a), a), weights_a
            ) + weighted_mean(absolute_error(translate(params, "generator_ab", b), b), weights_b)
        value = adversarial + cycle_weight * cycle + identity_weight * identity
        metrics = {
            "loss": value,
            "adversarial": adversarial,
            "cycle": cycle,
            "identity": identity,
            "fake_a_probability": real_probability(fake_a_logits),
            "fake_b_probability": real_probability(fake_b_logits),
        }
        return value, LossOutput({}, metrics)

    def bottleneck_representation(name, input_name):
        """The encoder half of generator ``name``: its bottleneck averaged over positions."""

        def layers(params, batch_stats, images):
            del batch_stats
            _, named = generators[name].apply(
                {"params": params[name]}, images.astype(dtype), return_layers=True
            )
            return named

        def fn(params, batch_stats, images):
            bottleneck = layers(params, batch_stats, images)["bottleneck"]
            return bottleneck.mean(axis=(1, 2)).astype(jnp.float32)

        return Representation(fn=fn, input=input_name, modules=(name,), layers=layers)

    def pictures(params, batch_stats, images, key, images_b=None, labels=None):
        """Rows x, translation, cycle back, of the held-out images: A's ``images`` and B's
        ``images_b`` (with ``domains="images_b"``), or B's as ``split_domains`` makes them from
        ``images``; with ``domains="label"`` each grid takes the images of its own domain first
        (by ``labels``), in their order. Grey rows shown in colour beside colour ones."""
        del batch_stats, key
        channels = max(spec_a.shape[-1], spec_b.shape[-1])

        def grid(x, there, back):
            forward = translate(params, there, x)
            rows = [x, forward, translate(params, back, forward)]
            return jnp.stack([jnp.broadcast_to(r, (*r.shape[:-1], channels)) for r in rows])

        a = images
        if domains == "images_b":
            b = images_b
        elif domains == "label" and labels is not None:  # a stable sort: own domain first
            a = images[jnp.argsort(labels != 0, stable=True)]
            b = images[jnp.argsort(labels != 1, stable=True)]
        elif domains == "inverted":
            b = inverted_domain(images)
        else:
            b = images
        out = {"translations_ab": grid(a, "generator_ab", "generator_ba")}
        if b is not None:
            out["translations_ba"] = grid(b, "generator_ba", "generator_ab")
        return out

    representations = {"generator_ab": bottleneck_representation("generator_ab", "images")}
    if domains == "images_b":
        representations["generator_ba"] = bottleneck_representation("generator_ba", "images_b")
    return Objective(
        name="cycle_gan",
        init=init,
        loss=loss,
        param_groups={"discriminator": DISCRIMINATORS, "generator": GENERATORS},
        representations=representations,
        pictures=pictures,
        picture_inputs={"images_b": ("images", "images_b"), "label": ("images", "labels")}.get(
            domains, ("images",)
        ),
    )
