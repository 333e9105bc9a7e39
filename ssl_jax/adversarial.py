"""Adversarial losses of the GAN objectives, as pure functions of discriminator logits.

Notes 003 (GANs: a generator G that maps noise to data and a discriminator D that tells the
data from G's samples, trained against each other) and 001 §3.2 (BiGAN / ALI: the same game
over pairs (x, z), with an encoder). A discriminator outputs a logit ℓ = D(·); its
probability of "real" is σ(ℓ). Every loss is a mean over the batch (each example's term
depends on that example alone, so no loss here needs the global batch beyond the mean), and
every input goes through ``at_least_float32``.

Two losses per game, one per parameter group. Each is the batch mean of a per-example term
(`PER_EXAMPLE_TERMS`); CycleGAN takes the terms themselves, to average them over each domain's
examples. The games:

- ``"non_saturating"`` (Goodfellow et al. 2014, §3): D minimises the cross-entropy of real
  against fake; G minimises −log σ(D(G(z))) rather than log(1 − σ(D(G(z)))), whose gradient
  vanishes when D rejects G's samples confidently, as it does early in training.
- ``"hinge"`` (Lim & Ye 2017; Miyato et al. 2018): D a margin loss, G the negated logit.
- ``"least_squares"`` (Mao et al. 2017; CycleGAN's choice): D regresses real logits to 1 and
  fake ones to 0, G its fakes' logits to 1; the terms only (CycleGAN uses it).

``log σ(ℓ)`` is computed as −softplus(−ℓ) (and log(1 − σ(ℓ)) as −softplus(ℓ)), finite for
every logit where the naive form overflows to log 0 beyond |ℓ| ≈ 17 in float32.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ssl_jax.errors import UserError
from ssl_jax.precision import at_least_float32

LOSSES = ("non_saturating", "hinge")


@dataclasses.dataclass(frozen=True)
class PerExampleTerms:
    """A game's losses per example, logits [B] → [B]: D's term on a real example and on a
    fake one, and G's term on a fake one."""

    real: Callable
    fake: Callable
    generator: Callable


PER_EXAMPLE_TERMS = {
    "non_saturating": PerExampleTerms(
        real=lambda logit: jax.nn.softplus(-logit),  # −log σ(ℓ)
        fake=jax.nn.softplus,  # −log(1 − σ(ℓ))
        generator=lambda logit: jax.nn.softplus(-logit),
    ),
    "hinge": PerExampleTerms(
        real=lambda logit: jax.nn.relu(1.0 - logit),
        fake=lambda logit: jax.nn.relu(1.0 + logit),
        generator=jnp.negative,
    ),
    "least_squares": PerExampleTerms(
        real=lambda logit: jnp.square(logit - 1.0),
        fake=jnp.square,
        generator=lambda logit: jnp.square(logit - 1.0),
    ),
}


def _discriminator_mean(kind, real_logits, fake_logits):
    terms = PER_EXAMPLE_TERMS[kind]
    real_logits, fake_logits = at_least_float32(real_logits), at_least_float32(fake_logits)
    return jnp.mean(terms.real(real_logits)) + jnp.mean(terms.fake(fake_logits))


def _generator_mean(kind, fake_logits):
    return jnp.mean(PER_EXAMPLE_TERMS[kind].generator(at_least_float32(fake_logits)))


def discriminator_loss(real_logits, fake_logits):
    """The discriminator's cross-entropy: real labelled 1, fake 0. Logits [B] → scalar.

    L_D = −E_x[log σ(D(x))] − E_z[log(1 − σ(D(G(z))))]
        = E_x[softplus(−D(x))] + E_z[softplus(D(G(z)))]
    """
    return _discriminator_mean("non_saturating", real_logits, fake_logits)


def generator_loss(fake_logits):
    """The non-saturating generator loss. Logits of G's samples [B] → scalar.

    L_G = −E_z[log σ(D(G(z)))] = E_z[softplus(−D(G(z)))]
    """
    return _generator_mean("non_saturating", fake_logits)


def hinge_discriminator_loss(real_logits, fake_logits):
    """The hinge loss of the discriminator. Logits [B] → scalar.

    L_D = E_x[max(0, 1 − D(x))] + E_z[max(0, 1 + D(G(z)))]
    """
    return _discriminator_mean("hinge", real_logits, fake_logits)


def hinge_generator_loss(fake_logits):
    """The generator's loss of the hinge game. Logits of G's samples [B] → scalar.

    L_G = −E_z[D(G(z))]
    """
    return _generator_mean("hinge", fake_logits)


def adversarial_losses(kind: str) -> tuple[Callable, Callable]:
    """``(discriminator_loss, generator_loss)`` of ``kind`` (``"non_saturating"`` or
    ``"hinge"``)."""
    if kind not in LOSSES:
        raise UserError(
            f"objective.loss must be one of {', '.join(LOSSES)}, got {kind!r}; "
            "e.g. --config.objective.loss=non_saturating."
        )
    if kind == "hinge":
        return hinge_discriminator_loss, hinge_generator_loss
    return discriminator_loss, generator_loss


def bidirectional_generator_loss(generator_loss_fn, real_logits, fake_logits):
    """The loss of BiGAN's encoder and generator together: the discriminator's labels swapped.

    D scores pairs: real (x, E(x)) and fake (G(z), z). E wants its pairs called fake and G its
    pairs called real (Donahue et al. 2017, §3.4: the "inverted labels" of the non-saturating
    game). Swapping a pair's label is negating its logit, so with L_G the generator loss above:

        L_{E,G} = L_G(D(G(z), z)) + L_G(−D(x, E(x)))
                = E_z[softplus(−D(G(z), z))] + E_x[softplus(D(x, E(x)))]   (non-saturating)
                = −E_z[D(G(z), z)] + E_x[D(x, E(x))]                         (hinge)
    """
    return generator_loss_fn(fake_logits) + generator_loss_fn(-at_least_float32(real_logits))


def r1_penalty(logits_fn, inputs, weight: float):
    """The R1 gradient penalty on real inputs (Mescheder et al. 2018, eq. 9):

        R1 = (γ/2) · E_x[‖∇_x D(x)‖²]

    ``logits_fn(inputs) -> [B]`` must score each example from that example alone (no batch
    norm in D), so that the gradient of the sum of logits is each example's own gradient.
    ``inputs`` is an array [B, ...] or a tuple of them (BiGAN's (x, E(x)): the squared norms of
    the gradients with respect to each part are added). The inputs are held constant: the
    penalty trains D alone. It pushes D towards zero gradient on the data, which removes the
    oscillation of the game near its equilibrium.
    """
    inputs = jax.tree.map(jax.lax.stop_gradient, inputs)
    grads = jax.grad(lambda x: jnp.sum(at_least_float32(logits_fn(x))))(inputs)
    squared = sum(
        jnp.sum(jnp.square(at_least_float32(g)).reshape(g.shape[0], -1), axis=-1)
        for g in jax.tree.leaves(grads)
    )
    return 0.5 * weight * jnp.mean(squared)


def real_probability(logits):
    """Mean σ(ℓ): how often, on average, D calls these examples real (a logged diagnostic)."""
    return jnp.mean(jax.nn.sigmoid(at_least_float32(logits)))


def discriminator_objective(d_loss_fn, logits_fn, real, fake, r1_weight: float):
    """D's loss on ``real`` and ``fake`` inputs [B, ...] and its logged metrics:
    L_D + R1 (R1 only when ``r1_weight`` is not 0).

    ``fake`` must already be under `jax.lax.stop_gradient` (the generator's output is D's
    data), and ``logits_fn(inputs) -> [2B]`` scores each example alone (no batch norm in D),
    so scoring real and fake in one pass is only batching.
    """
    real_logits, fake_logits = jnp.split(logits_fn(jnp.concatenate([real, fake])), 2)
    adversarial = d_loss_fn(real_logits, fake_logits)
    r1 = r1_penalty(logits_fn, real, r1_weight) if r1_weight else jnp.zeros((), adversarial.dtype)
    value = adversarial + r1
    metrics = {
        "loss": value,
        "adversarial": adversarial,
        "r1": r1,
        "real_probability": real_probability(real_logits),
        "fake_probability": real_probability(fake_logits),
    }
    return value, metrics
