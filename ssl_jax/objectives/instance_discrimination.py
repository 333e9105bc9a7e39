"""Instance discrimination with a memory bank: every training image is its own class, scored by
a non-parametric softmax against a bank of one unit vector per image.

Notes 002 §2.9 (instance discrimination; §2.9.1 "a bank of the samples' representations", the
memory-bank design MoCo's queue replaced) and 001 §3.4.2 (contrastive losses, InfoNCE's bound).
Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination", 2018.

Modules: ``encoder`` (evaluated) and ``projector`` (a linear layer to D = 128 in the paper).
Each image x_i of the batch gets one augmented view and its feature f_i = g(h(x_i))/‖·‖. The
memory bank V = [v_1 … v_N] (one unit row per training example, N = ``bank_size``, rows
initialised as random unit vectors) is objective state and gets no gradient. With τ =
``temperature`` = 0.07,

    P(i | f) = exp(v_iᵀf/τ) / Z_i,   Z_i = Σ_j exp(v_jᵀf/τ).

``loss="softmax"`` minimises −log P(i | f_i) exactly (the full softmax over the N rows: fine
for small N). ``loss="nce"`` (the paper's) approximates it by noise-contrastive estimation
with m = ``num_negatives`` rows drawn uniformly from the bank (P_n = 1/N) and Z held at its
Monte-Carlo estimate Z ≈ N·mean exp(vᵀf/τ) from the first step:

    h(i, f) = P(i|f) / (P(i|f) + m·P_n),
    L = −E[log h(i, f_i)] − m·E_{j~P_n}[log(1 − h(j, f_i))]   (`memory_bank_nce_loss`).

After each step the rows of exactly this step's examples — the whole global batch, every
device's — move towards their new features (`update_bank`),

    v_i ← normalise(λ·v_i + (1 − λ)·f_i),   λ = ``bank_momentum`` = 0.5,

and every other row stays as it is. The objective needs each example's index into the
training set: ``batch["index"]`` [B] int32 (a dataset whose batches lack it fails with a
one-line `UserError`). The PRNG key of a step is split into (augmentation key, negative
sampling key).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.losses import contrastive_accuracy, l2_normalize, mi_lower_bound
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, Objective
from ssl_jax.objectives.siamese import apply_chain, build_chain, collapse_metrics, init_chain
from ssl_jax.precision import at_least_float32

LOSSES = ("nce", "softmax")

# The config block ``objective.name=instance_discrimination`` switches to
# (ssl_jax.config.switch_block): the paper's τ = 0.07, m = 4096 noise samples, λ = 0.5 and a
# linear projection to 128-d. ``bank_size`` must be the number of training examples;
# 0 takes it from the dataset's ``index`` spec (its ``num_values``) when the data gives one.
DEFAULTS = dict(
    projector=dict(hidden_dims=(), output_dim=128),
    temperature=0.07,
    loss="nce",
    num_negatives=4096,
    bank_size=0,
    bank_momentum=0.5,
)


class InstanceDiscriminationState(NamedTuple):
    bank: jax.Array  # [N, D] unit rows, one per training example
    z: jax.Array  # [] NCE's normalisation constant; 0 until the first step estimates it


def nonparametric_softmax_loss(features, bank, index, temperature):
    """−(1/B) Σ_b log [exp(v_{i_b}ᵀf_b/τ) / Σ_j exp(v_jᵀf_b/τ)] and its logits [B, N].

    features: [B, D] unit rows; bank: [N, D] unit rows; index: [B] int, example b's row.
    """
    features, bank = at_least_float32(features), at_least_float32(bank)
    logits = features @ bank.T / temperature
    positive = jnp.take_along_axis(logits, index[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive), logits


def bank_similarities(features, bank, index, negative_index):
    """Each feature's cosine with its own row, [B], and with the sampled rows, [B, m].

    The m negatives are shared by the batch (one uniform draw per step rather than one per
    example: the same estimator in expectation, and a [B, m] product instead of a [B, m, D]
    gather).
    """
    features, bank = at_least_float32(features), at_least_float32(bank)
    positive = jnp.sum(features * bank[index], axis=-1)
    negative = features @ bank[negative_index].T
    return positive, negative


def memory_bank_nce_loss(positive, negative, temperature, z, bank_size):
    """NCE of Wu et al. 2018 (eq. 6–7) with uniform noise P_n = 1/N over the N bank rows.

    With log P(j|f) = v_jᵀf/τ − log Z and k = m·P_n = m/N (m = negative.shape[1]),

        L = −(1/B) Σ_b [ log h_b⁺ + Σ_{j ∈ negatives} log(1 − h_bj) ],
        h = P/(P + k),  log h = −softplus(log k − log P),  log(1 − h) = −softplus(log P − log k).

    Args:
      positive: [B] v_iᵀf of each example's own row. negative: [B, m] of the sampled rows.
      temperature: τ. z: the normalisation constant Z. bank_size: N.
    """
    log_k = jnp.log(negative.shape[1] / bank_size)
    log_p_pos = positive / temperature - jnp.log(z)
    log_p_neg = negative / temperature - jnp.log(z)
    return jnp.mean(
        jax.nn.softplus(log_k - log_p_pos) + jnp.sum(jax.nn.softplus(log_p_neg - log_k), axis=1)
    )


def estimate_z(positive, negative, temperature, bank_size):
    """Z ≈ N · mean of exp(vᵀf/τ) over the scored pairs (the paper's one-off estimate)."""
    scores = jnp.concatenate([positive[:, None], negative], axis=1) / temperature
    return bank_size * jnp.exp(jax.nn.logsumexp(scores) - jnp.log(scores.size))


def update_bank(bank, index, features, momentum):
    """Rows ``index`` of ``bank`` ← normalise(λ·v + (1 − λ)·f); the other rows unchanged."""
    rows = momentum * bank[index] + (1.0 - momentum) * features.astype(bank.dtype)
    return bank.at[index].set(l2_normalize(rows))


def _bank_size(cfg, input_spec) -> int:
    if cfg.bank_size > 0:
        return cfg.bank_size
    index_spec = input_spec.get("index")
    if index_spec is not None and index_spec.num_values:
        return int(index_spec.num_values)
    raise UserError(
        "instance_discrimination needs objective.bank_size, the number of training examples "
        "(one memory-bank row each), e.g. --config.objective.bank_size=50000."
    )


@register_objective("instance_discrimination")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "instance_discrimination", kind="images")
    if cfg.loss not in LOSSES:
        raise UserError(f"objective.loss must be one of {LOSSES}, got {cfg.loss!r}.")
    if not 0 <= cfg.bank_momentum < 1:
        raise UserError(f"objective.bank_momentum must lie in [0, 1), got {cfg.bank_momentum}.")
    if cfg.loss == "nce" and cfg.num_negatives < 1:
        raise UserError(f"objective.num_negatives must be ≥ 1, got {cfg.num_negatives}.")
    bank_size = _bank_size(cfg, input_spec)
    chain = build_chain(config, image_spec, projector=cfg.projector)

    def init(key, sample_batch):
        net_key, bank_key = jax.random.split(key)
        params, batch_stats = init_chain(chain, net_key, sample_batch["images"])
        dtype = jax.tree.leaves(params)[0].dtype
        bank = l2_normalize(jax.random.normal(bank_key, (bank_size, cfg.projector.output_dim)))
        return (
            params,
            batch_stats,
            InstanceDiscriminationState(bank.astype(dtype), jnp.zeros((), dtype)),
        )

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del group, step
        if "index" not in batch:
            raise UserError(
                "instance_discrimination needs each example's index into the training set, "
                f"batch['index'], but the batches hold only {', '.join(sorted(batch))}."
            )
        index = batch["index"]
        view_key, negative_key = jax.random.split(key)
        view = augment.make_views(batch["images"], view_key, config.aug)[0]
        outputs, new_stats = apply_chain(chain, params, batch_stats, view, train=True)
        features = l2_normalize(at_least_float32(outputs["projector"]))
        bank = jax.lax.stop_gradient(state.bank)
        if cfg.loss == "softmax":
            value, logits = nonparametric_softmax_loss(features, bank, index, cfg.temperature)
            z = state.z
            metrics = {
                "contrastive_acc": contrastive_accuracy(logits, index),
                # The full softmax is InfoNCE over all N rows: I ≥ log N − L.
                "mi_bound": mi_lower_bound(value, bank_size),
            }
        else:
            negative_index = jax.random.randint(negative_key, (cfg.num_negatives,), 0, bank_size)
            positive, negative = bank_similarities(features, bank, index, negative_index)
            estimate = estimate_z(
                *jax.lax.stop_gradient((positive, negative)), cfg.temperature, bank_size
            )
            z = jnp.where(state.z > 0, state.z, estimate.astype(state.z.dtype))
            value = memory_bank_nce_loss(positive, negative, cfg.temperature, z, bank_size)
            # NCE is no InfoNCE bound; the softmax over the positive and the m sampled rows is,
            # logged beside it to compare with the other contrastive objectives.
            logits = jax.lax.stop_gradient(
                jnp.concatenate([positive[:, None], negative], axis=1) / cfg.temperature
            )
            sampled = jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[:, 0])
            metrics = {
                "contrastive_acc": contrastive_accuracy(logits, jnp.zeros_like(index)),
                "mi_bound": mi_lower_bound(sampled, cfg.num_negatives + 1),
                "z": z,
            }
        metrics = {"loss": value, **metrics, **collapse_metrics(features)}
        outputs = {"index": index, "features": jax.lax.stop_gradient(features), "z": z}
        return value, LossOutput(new_stats, metrics, outputs)

    def update_state(state, params, outputs, step):
        del params, step
        bank = update_bank(state.bank, outputs["index"], outputs["features"], cfg.bank_momentum)
        return InstanceDiscriminationState(bank, outputs["z"].astype(state.z.dtype))

    return Objective("instance_discrimination", init, loss, update_state)
