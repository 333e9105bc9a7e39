"""DINO: self-distillation with no labels — a student matches the centred, sharpened output of
an EMA teacher over K prototypes, on multi-crop views.

Notes 001 §3.4.3 (3) (DINO: an attraction-only loss between the online network and its EMA
target, a cross-entropy instead of BYOL's predictor; centring against collapse to one "class",
a colder teacher τ′ < τ against collapse to the uniform distribution). Caron et al., "Emerging
Properties in Self-Supervised Vision Transformers", 2021.

Modules: ``encoder`` (evaluated) and ``head``, the DINO head: an MLP (Dense → [BN →] GELU per
hidden layer) to a bottleneck z, z ← z/‖z‖, then a weight-normalised linear layer to K
prototypes, logits_k = g_k · w_kᵀz/‖w_k‖ (g_k = 1 fixed when ``norm_last_layer``). The teacher
(encoder and head) and the centre c ∈ ℝᴷ live in the objective state and get no gradient.

Views: ``config.aug.num_global`` global crops x_1…x_G (G = 2) and ``num_local`` smaller local
crops (multi-crop); the student s(·) sees all V = G + L views, the teacher t(·) only the global
ones. With P_t(x) = softmax((t(x) − c)/τ_t) and P_s(x) = softmax(s(x)/τ_s),

    L = mean over pairs (i ≤ G, j ≤ V, j ≠ i) of  −Σ_k P_t(x_i)_k · log P_s(x_j)_k
    (`ssl_jax.losses.dino_loss`, averaged over the batch).

After each step: θ_t ← m·θ_t + (1 − m)·θ_s with m rising from ``momentum`` (0.996) to 1 on a
cosine schedule, and c ← m_c·c + (1 − m_c)·mean of t(x_i) over the global views of the whole
global batch (`ssl_jax.losses.dino_center_update`, m_c = ``center_momentum`` = 0.9). τ_t warms
up linearly from ``warmup_teacher_temp`` to ``teacher_temp`` over ``warmup_teacher_temp_steps``
(`teacher_temperature`); τ_s = ``student_temp`` = 0.1. ``freeze_last_layer_steps`` keeps the
prototypes out of the gradient for the first steps (the paper: the first epoch).

The collapse ablations of the paper (its study of collapse, Fig. 7): ``centering=False`` keeps
c = 0 (collapse to one prototype), ``teacher_temp = warmup_teacher_temp = student_temp``
removes sharpening (collapse to the uniform distribution). ``teacher_entropy`` (H(P_t)) and
``kl`` (KL(P_t‖P_s) = L − H(P_t)) are logged to tell the two apart, as in the paper's figure;
the collapse diagnostics (effective rank, embedding std) are those of the student's
distributions P_s on the global crops, which both collapses make identical across examples.

Encoders must accept both crop sizes (a global-pooled one: small_cnn with ``pool="avg"``, a
ResNet, a ViT). Batch norm runs in train mode on the global crops, then on the local crops (the
two passes chained); the teacher normalises with its own batch statistics, as BYOL's target.
"""

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data.spec import require
from ssl_jax.errors import UserError
from ssl_jax.losses import dino_center_update, dino_loss, l2_normalize
from ssl_jax.objectives import register_objective
from ssl_jax.objectives.base import LossOutput, Objective
from ssl_jax.objectives.siamese import (
    Target,
    apply_chain,
    build_chain,
    collapse_metrics,
    init_chain,
    init_target,
    momentum_at,
    update_target,
)

# The config block ``objective.name=dino`` switches to (ssl_jax.config.switch_block). The paper
# (ViT-S/16, ImageNet) uses a 2048-wide 3-layer MLP without batch norm, a 256-d bottleneck and
# K = 65,536; the widths here are scaled down for small images, the temperatures and momenta
# are the paper's. Batch norm in the head (the paper's option for ConvNets): the pooled
# features of a small random CNN barely differ between images, so without it the centred
# teacher starts uniform and the run collapses there (measured on digits: kNN below random
# init, effective rank 1.4, teacher entropy log K).
DEFAULTS = dict(
    head=dict(
        hidden_dims=(1024, 1024),
        bottleneck_dim=128,
        output_dim=1024,  # K, the number of prototypes
        use_bn=True,
        norm_last_layer=True,
    ),
    student_temp=0.1,
    teacher_temp=0.04,
    warmup_teacher_temp=0.04,
    warmup_teacher_temp_steps=0,
    centering=True,
    center_momentum=0.9,
    momentum=0.996,
    momentum_schedule="cosine",
    freeze_last_layer_steps=0,
)


class DINOHead(nn.Module):
    """MLP → L2-normalised bottleneck → weight-normalised linear layer to K prototypes."""

    hidden_dims: Sequence[int] = (2048, 2048)
    bottleneck_dim: int = 256
    output_dim: int = 65536
    use_bn: bool = False
    norm_last_layer: bool = True
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h, *, train: bool):
        # The paper's truncated-normal(0.02) init of the MLP: small logits at the start.
        init = nn.initializers.truncated_normal(0.02)
        h = h.astype(self.dtype)
        for width in self.hidden_dims:
            h = nn.Dense(width, kernel_init=init, dtype=self.dtype)(h)
            if self.use_bn:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(h)
            h = nn.gelu(h, approximate=False)
        h = nn.Dense(self.bottleneck_dim, kernel_init=init, dtype=self.dtype)(h)
        h = l2_normalize(h)
        directions = self.param(
            "prototypes", nn.initializers.normal(1.0), (self.bottleneck_dim, self.output_dim)
        )
        # Weight normalisation: only each prototype's direction is learnt; with the norm fixed
        # to 1 the logits are cosines, bounded in [-1, 1] before the temperature.
        weight = l2_normalize(directions, axis=0).astype(self.dtype)
        if not self.norm_last_layer:
            weight = weight * self.param("scale", nn.initializers.ones, (self.output_dim,))
        return h @ weight


class DINOState(NamedTuple):
    target: Target  # the teacher: EMA copy of encoder and head
    center: jax.Array  # [K] running mean of the teacher's logits


def build_dino_chain(config, image_spec):
    """``encoder`` → ``head`` (the student's network; the teacher is a copy of it)."""
    (encoder,) = build_chain(config, image_spec)
    block = config.objective.head
    head = DINOHead(
        hidden_dims=tuple(block.hidden_dims),
        bottleneck_dim=block.bottleneck_dim,
        output_dim=block.output_dim,
        use_bn=block.use_bn,
        norm_last_layer=block.norm_last_layer,
        dtype=jnp.dtype(config.compute_dtype),
    )
    return (encoder, ("head", head))


def teacher_temperature(step, cfg):
    """τ_t at ``step``: linear from ``warmup_teacher_temp`` (step 0) to ``teacher_temp`` (step
    ``warmup_teacher_temp_steps``), then constant."""
    warmup = cfg.warmup_teacher_temp_steps
    if warmup <= 0:
        return jnp.asarray(cfg.teacher_temp, jnp.float32)
    progress = jnp.clip(jnp.asarray(step, jnp.float32) / warmup, 0.0, 1.0)
    return cfg.warmup_teacher_temp + (cfg.teacher_temp - cfg.warmup_teacher_temp) * progress


def _check(config):
    cfg, aug = config.objective, config.aug
    if aug.num_global < 1 or aug.num_global + aug.num_local < 2:
        raise UserError(
            f"dino needs at least one global crop and two views in all, got aug.num_global="
            f"{aug.num_global}, aug.num_local={aug.num_local}; set aug.num_global=2."
        )
    if aug.num_local and config.model.get("pool") == "flatten":
        raise UserError(
            f"dino's {aug.num_local} local crops are smaller than the global ones, so the "
            "encoder must pool globally; set --config.model.pool=avg."
        )
    for name in ("student_temp", "teacher_temp", "warmup_teacher_temp"):
        if not cfg[name] > 0:
            raise UserError(f"objective.{name} must be > 0, got {cfg[name]}.")
    if not 0 <= cfg.center_momentum <= 1:
        raise UserError(f"objective.center_momentum must lie in [0, 1], got {cfg.center_momentum}.")


@register_objective("dino")
def make(config, input_spec) -> Objective:
    cfg = config.objective
    image_spec = require(input_spec, "images", "dino", kind="images")
    _check(config)
    chain = build_dino_chain(config, image_spec)
    modules = tuple(name for name, _ in chain)
    num_global = config.aug.num_global

    def init(key, sample_batch):
        params, batch_stats = init_chain(chain, key, sample_batch["images"])
        dtype = jax.tree.leaves(params)[0].dtype
        center = jnp.zeros((cfg.head.output_dim,), dtype)
        return params, batch_stats, DINOState(init_target(params, batch_stats, modules), center)

    def student_params(params, step):
        # The paper keeps the prototypes fixed for the first epoch: learning them while the
        # rest of the network is random makes training unstable.
        if cfg.freeze_last_layer_steps <= 0:
            return params
        frozen = step < cfg.freeze_last_layer_steps
        head = {
            name: jnp.where(frozen, jax.lax.stop_gradient(value), value)
            if name in ("prototypes", "scale")
            else value
            for name, value in params["head"].items()
        }
        return {**params, "head": head}

    def loss(params, batch_stats, state, batch, key, step, *, group):
        del group
        views = augment.make_views(batch["images"], key, config.aug)
        batch_size = batch["images"].shape[0]
        global_crops = jnp.concatenate(views[:num_global])
        student = student_params(params, step)
        out, new_stats = apply_chain(chain, student, batch_stats, global_crops, train=True)
        student_logits = [out["head"]]
        if len(views) > num_global:  # local crops: another resolution, another pass
            local_out, new_stats = apply_chain(
                chain,
                student,
                {**batch_stats, **new_stats},
                jnp.concatenate(views[num_global:]),
                train=True,
            )
            student_logits.append(local_out["head"])
        student_logits = jnp.concatenate(student_logits).reshape(len(views), batch_size, -1)
        teacher_out, teacher_stats = apply_chain(
            chain, state.target.params, state.target.batch_stats, global_crops, train=True
        )
        teacher_logits = jax.lax.stop_gradient(teacher_out["head"]).reshape(
            num_global, batch_size, -1
        )
        tau_t = teacher_temperature(step, cfg)
        value = dino_loss(student_logits, teacher_logits, state.center, cfg.student_temp, tau_t)
        teacher_probs = jax.nn.softmax((teacher_logits - state.center) / tau_t, axis=-1)
        teacher_entropy = jnp.mean(
            -jnp.sum(teacher_probs * jnp.log(jnp.maximum(teacher_probs, 1e-30)), axis=-1)
        )
        metrics = {
            "loss": value,
            # Each teacher view is paired with the same number of student views, so the mean
            # cross-entropy splits exactly into H(P_t) + KL(P_t‖P_s).
            "teacher_entropy": teacher_entropy,
            "kl": value - teacher_entropy,
            "teacher_temp": tau_t,
            # On the student's distributions over the prototypes (global crops): both collapses
            # make every row the same (uniform, or one prototype), so rank → 1 and std → 0;
            # the logits themselves can keep varying in direction while their softmax is flat.
            **collapse_metrics(
                jax.nn.softmax(student_logits[:num_global] / cfg.student_temp).reshape(
                    num_global * batch_size, -1
                )
            ),
        }
        outputs = {"teacher_logits": teacher_logits, "target_batch_stats": teacher_stats}
        return value, LossOutput(new_stats, metrics, outputs)

    def update_state(state, params, outputs, step):
        momentum = momentum_at(step, cfg, config.num_steps)
        center = state.center
        if cfg.centering:
            center = dino_center_update(center, outputs["teacher_logits"], cfg.center_momentum)
        return DINOState(
            update_target(state.target, params, outputs["target_batch_stats"], momentum), center
        )

    return Objective("dino", init, loss, update_state)
