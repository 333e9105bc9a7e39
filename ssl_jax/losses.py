"""Multi-view losses as pure functions of arrays: no model, no flax, only ``jax.numpy``.

Each function takes embeddings (and labels or hyperparameters) and returns a scalar loss, so it
can be lifted into any training loop; the objectives in ``ssl_jax.objectives`` call them.
Formulas follow the course notes 001 §3.4 (multi-view representation learning: §3.4.2
contrastive losses, §3.4.3 negative-free losses, §3.4.4 practical tricks) and 002 (MoCo,
SimCLR, instance discrimination); each docstring gives its formula, its paper and the section.

- Contrastive (§3.4.2): ``nt_xent`` (SimCLR), ``info_nce`` (MoCo's queue form),
  ``batch_info_nce`` (in-batch form), ``clip_loss``, ``supcon_loss``,
  ``margin_contrastive_loss`` (Chopra/Hadsell), ``triplet_loss`` and the mining losses
  ``batch_hard_triplet_loss`` and ``semi_hard_triplet_loss``; ``mi_lower_bound``.
- Negative-free (§3.4.3): ``byol_loss``, ``simsiam_loss``, ``barlow_twins_loss``,
  ``vicreg_loss``, ``dino_loss``, and the HSIC losses ``hsic_loss`` and ``ssl_hsic_loss``.
- Helpers: ``l2_normalize``, ``contrastive_accuracy``, ``pairwise_distances``, ``hsic``,
  ``dino_center_update``, and the ``*_logits`` functions that expose a loss's logits.

Precision: every input goes through ``at_least_float32``, so bfloat16 activations are reduced
in float32 and the float64 exactness mode stays float64 end to end. Hyperparameters (τ, λ,
margins, ...) may be Python floats or traced scalars; every function works under ``jax.jit``
(string options such as ``kernel`` are static). Similarities are plain ``@`` products at the
default matmul precision, as elsewhere in ssl_jax.

Gradients: only the losses whose definition includes a stop-gradient apply one (BYOL's and
SimSiam's target, DINO's teacher and center). MoCo's keys come from a momentum encoder and get
no gradient there, but ``info_nce`` leaves that to the caller.
"""

import jax
import jax.numpy as jnp

from ssl_jax.precision import at_least_float32

# --- Helpers ------------------------------------------------------------------------------------


def l2_normalize(x, axis=-1, eps=1e-12):
    """x / max(||x||, eps) along ``axis``."""
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps * eps))


def _unit(x, normalize=True):
    x = at_least_float32(jnp.asarray(x))
    return l2_normalize(x) if normalize else x


def _cross_entropy(logits, labels):
    """−log softmax(logits)[label] per row (the same operations as optax's integer-label CE)."""
    label_logits = jnp.take_along_axis(logits, jnp.expand_dims(labels, -1), axis=-1).take(
        0, axis=-1
    )
    return jax.nn.logsumexp(logits, axis=-1) - label_logits


def _safe_sqrt(x):
    """√x with gradient 0 (not ∞ or NaN) where x = 0."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _squared_distances(a, b):
    """||a_i − b_j||² [N, M], from the differences (exact zeros, no cancellation; O(N·M·D))."""
    diff = a[:, None, :] - b[None, :, :]
    return jnp.sum(diff * diff, axis=-1)


def _off_diagonal_mask(n, m=None):
    return ~jnp.eye(n, m, dtype=bool)


def _standardize(z, eps):
    """Each column to mean 0 and variance 1 over the batch: (z − μ) / √(σ² + eps), σ² biased."""
    centered = z - jnp.mean(z, axis=0)
    return centered * jax.lax.rsqrt(jnp.mean(centered * centered, axis=0) + eps)


def _cross_correlation(z1, z2, eps):
    """C = ẑ1ᵀ ẑ2 / N of the standardised views [D, D]."""
    z1 = _standardize(at_least_float32(jnp.asarray(z1)), eps)
    z2 = _standardize(at_least_float32(jnp.asarray(z2)), eps)
    return z1.T @ z2 / z1.shape[0]


def contrastive_accuracy(logits, positive_index):
    """Top-1 accuracy: the fraction of rows whose largest logit is at ``positive_index``.

    Args:
      logits: [N, C] (−∞ entries, e.g. NT-Xent's diagonal, are never picked unless a whole
        row is −∞).
      positive_index: [N] integer index of each row's positive.
    """
    return (jnp.argmax(logits, axis=-1) == positive_index).mean()


# --- Contrastive losses (notes 001 §3.4.2) -------------------------------------------------------


def nt_xent_logits(z1, z2, temperature):
    """SimCLR's similarity logits over the 2B views and the index of each view's positive.

    u = z/||z|| for the 2B views [z1; z2], s_ij = u_iᵀu_j / τ, with s_ii = −∞ (a view is not
    its own candidate); the positive of view i is p(i) = i ± B, the other view of its image.

    Returns:
      (logits [2B, 2B], positive index [2B]).
    """
    z = l2_normalize(at_least_float32(jnp.concatenate([z1, z2])))
    n = z.shape[0]
    logits = (z @ z.T) / temperature
    logits = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, logits)  # a view is not its own pair
    positives = jnp.roll(jnp.arange(n), n // 2)  # view i ↔ view i ± B
    return logits, positives


def nt_xent(z1, z2, temperature):
    """Normalised-temperature cross-entropy over 2B views (SimCLR's NT-Xent).

    With u = z/||z|| for the 2B views and s_ij = u_iᵀu_j / τ, the loss of view i whose positive
    is view p(i) (the other view of the same image) is

        ℓ_i = −log [ exp(s_{i,p(i)}) / Σ_{j≠i} exp(s_ij) ],      L = (1/2B) Σ_i ℓ_i,

    InfoNCE (notes 001 §3.4.2; 002 §2.9.2) with the other 2B − 2 views as the M negatives.
    Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", 2020.
    The batch must be the global batch (all devices' views), or the negatives are fewer.

    Args:
      z1, z2: [B, D] projections of the first and second view of the same B images.
      temperature: τ > 0.
    """
    logits, positives = nt_xent_logits(z1, z2, temperature)
    return _cross_entropy(logits, positives).mean()


def info_nce_logits(query, positive_key, negative_keys, temperature, *, normalize=True):
    """MoCo's logits [q·k⁺, q·k⁻_1, …, q·k⁻_K] / τ per query, and their labels (all 0).

    Returns:
      (logits [B, 1 + K], labels [B] of zeros: the positive is at index 0).
    """
    q = _unit(query, normalize)
    k_pos = _unit(positive_key, normalize)
    k_neg = _unit(negative_keys, normalize)
    positive = jnp.sum(q * k_pos, axis=-1, keepdims=True)  # [B, 1]
    negative = q @ k_neg.T  # [B, K]
    logits = jnp.concatenate([positive, negative], axis=-1) / temperature
    return logits, jnp.zeros(q.shape[0], dtype=jnp.int32)


def info_nce(query, positive_key, negative_keys, temperature, *, normalize=True):
    """InfoNCE in MoCo's queue form: one positive key per query, K negatives shared by all.

        ℓ_b = −log [ exp(q_b·k⁺_b / τ) / (exp(q_b·k⁺_b / τ) + Σ_{i=1..K} exp(q_b·k⁻_i / τ)) ],
        L = (1/B) Σ_b ℓ_b.

    Notes 001 §3.4.2 (L_InfoNCE with M = K negatives; §3.4.4 for the queue), 002 §2.9.1
    (L_q = −log exp(q·k₊/τ) / Σ_{i=0..K} exp(q·k_i/τ)). He et al., "Momentum Contrast for
    Unsupervised Visual Representation Learning", 2020; Oord et al., "Representation Learning
    with Contrastive Predictive Coding", 2018. Keys from a momentum encoder or a queue should
    reach this function under ``jax.lax.stop_gradient`` (the caller's choice).

    Args:
      query: [B, D]. positive_key: [B, D] (row b is query b's positive).
      negative_keys: [K, D], e.g. MoCo's queue.
      temperature: τ > 0.
      normalize: L2-normalise the three inputs first (cosine similarities), as MoCo does.
    """
    logits, labels = info_nce_logits(
        query, positive_key, negative_keys, temperature, normalize=normalize
    )
    return _cross_entropy(logits, labels).mean()


def batch_info_nce_logits(query, key, temperature, *, normalize=True):
    """In-batch logits q_i·k_j / τ [B, B] and labels arange(B) (row i's positive is key i)."""
    q = _unit(query, normalize)
    k = _unit(key, normalize)
    logits = (q @ k.T) / temperature
    return logits, jnp.arange(q.shape[0])


def batch_info_nce(query, key, temperature, *, normalize=True):
    """InfoNCE with in-batch negatives: query i's positive is key i, the other B − 1 keys are
    its negatives.

        ℓ_i = −log [ exp(q_i·k_i / τ) / Σ_{j=1..B} exp(q_i·k_j / τ) ],   L = (1/B) Σ_i ℓ_i.

    Notes 001 §3.4.2 (InfoNCE with M = B − 1). One direction of CLIP's loss (``clip_loss``),
    and MoCo v3's ``ctr`` (Chen, Xie & He, "An Empirical Study of Training Self-Supervised
    Vision Transformers", 2021), which also multiplies the loss by 2τ — not done here.

    Args:
      query, key: [B, D].
      temperature: τ > 0.
      normalize: L2-normalise both first.
    """
    logits, labels = batch_info_nce_logits(query, key, temperature, normalize=normalize)
    return _cross_entropy(logits, labels).mean()


def clip_loss(image_emb, text_emb, temperature, *, normalize=True):
    """CLIP's symmetric contrastive loss over B image–text pairs.

    With u = image/||image||, v = text/||text|| and s_ij = u_iᵀv_j / τ,

        L = ½ [ (1/B) Σ_i −log softmax_j(s_ij)[i] + (1/B) Σ_j −log softmax_i(s_ij)[j] ],

    the cross-entropy of picking the right text for each image and the right image for each
    text. Notes 001 §3.4.1 (CLIP: views from different modalities), §3.4.2. Radford et al.,
    "Learning Transferable Visual Models From Natural Language Supervision", 2021.

    Args:
      image_emb, text_emb: [B, D] (row i of each is a pair).
      temperature: τ > 0; may be a traced, learned scalar — CLIP learns a logit scale
        s = exp(t) = 1/τ, so pass ``temperature=jnp.exp(-t)``.
      normalize: L2-normalise both first.
    """
    logits, labels = batch_info_nce_logits(image_emb, text_emb, temperature, normalize=normalize)
    image_to_text = _cross_entropy(logits, labels).mean()
    text_to_image = _cross_entropy(logits.T, labels).mean()
    return (image_to_text + text_to_image) / 2


def supcon_loss(z, labels, temperature, *, normalize=True):
    """Supervised contrastive loss (SupCon, the L_out form) over N stacked views with labels.

    With u = z/||z||, s_ia = u_iᵀu_a / τ, A(i) = {a ≠ i} and P(i) = {p ∈ A(i): y_p = y_i},

        ℓ_i = −(1/|P(i)|) Σ_{p∈P(i)} log [ exp(s_ip) / Σ_{a∈A(i)} exp(s_ia) ],
        L = mean of ℓ_i over the anchors with |P(i)| > 0,

    anchors without a positive are left out of the mean (0 if no anchor has one). With
    labels = image index over two views it is NT-Xent. Notes 001 §3.4.1 (SupCon: positives
    share a label). Khosla et al., "Supervised Contrastive Learning", 2020 (Eq. 2); their code
    also scales the loss by τ/τ_base, which is not done here.

    Args:
      z: [N, D] all views stacked. labels: [N] integer class (or image) labels.
      temperature: τ > 0.
      normalize: L2-normalise z first.
    """
    u = _unit(z, normalize)
    n = u.shape[0]
    not_self = _off_diagonal_mask(n)
    logits = jnp.where(not_self, (u @ u.T) / temperature, -jnp.inf)
    log_prob = logits - jax.nn.logsumexp(logits, axis=-1, keepdims=True)
    positive = (labels[:, None] == labels[None, :]) & not_self
    num_positives = jnp.sum(positive, axis=-1)
    mean_log_prob = jnp.sum(jnp.where(positive, log_prob, 0.0), axis=-1) / jnp.maximum(
        num_positives, 1
    )
    has_positive = num_positives > 0
    return -jnp.sum(jnp.where(has_positive, mean_log_prob, 0.0)) / jnp.maximum(
        jnp.sum(has_positive), 1
    )


def margin_contrastive_loss(z_a, z_b, same, margin):
    """The margin contrastive loss of Chopra et al. 2005 / Hadsell et al. 2006.

    With d = ||z_a − z_b||₂ per pair and Y = ``same`` (1 for a positive pair, 0 for a negative),

        L = (1/N) Σ_n ½ [ Y_n d_n² + (1 − Y_n) max(0, m − d_n)² ],

    the ½ as in Hadsell, Chopra & LeCun, "Dimensionality Reduction by Learning an Invariant
    Mapping", 2006 (Eq. 4). Notes 001 §3.4.2 (1) write the same loss without the ½ and with the
    margin on the squared distance, max(0, ε − d²). The gradient of d at d = 0 is taken as 0
    (d = √(d²) is evaluated safely), so coinciding embeddings give no NaN.

    Args:
      z_a, z_b: [N, D] the two embeddings of each pair.
      same: [N] bool or 0/1 (soft values in [0, 1] also work).
      margin: m > 0.
    """
    z_a, z_b = at_least_float32(jnp.asarray(z_a)), at_least_float32(jnp.asarray(z_b))
    diff = z_a - z_b
    squared = jnp.sum(diff * diff, axis=-1)
    distance = _safe_sqrt(squared)
    same = jnp.asarray(same).astype(squared.dtype)
    per_pair = same * squared + (1.0 - same) * jnp.square(jax.nn.relu(margin - distance))
    return jnp.mean(per_pair) / 2


def _distance(squared, squared_output):
    return squared if squared_output else _safe_sqrt(squared)


def triplet_loss(anchor, positive, negative, margin, *, squared=True):
    """The triplet loss (FaceNet) on given triplets.

        L = (1/N) Σ_n max(0, d(a_n, p_n) − d(a_n, n_n) + m),

    d the squared Euclidean distance ||·||² (``squared=True``, FaceNet's and the notes' choice)
    or the Euclidean distance (its gradient at d = 0 taken as 0). Notes 001 §3.4.2 (2).
    Schroff, Kalenichenko & Philbin, "FaceNet: A Unified Embedding for Face Recognition and
    Clustering", 2015.

    Args:
      anchor, positive, negative: [N, D].
      margin: m ≥ 0.
    """
    anchor = at_least_float32(jnp.asarray(anchor))
    d_ap = jnp.sum(jnp.square(anchor - at_least_float32(jnp.asarray(positive))), axis=-1)
    d_an = jnp.sum(jnp.square(anchor - at_least_float32(jnp.asarray(negative))), axis=-1)
    d_ap, d_an = _distance(d_ap, squared), _distance(d_an, squared)
    return jnp.mean(jax.nn.relu(d_ap - d_an + margin))


def pairwise_distances(x, squared=True):
    """d(x_i, x_j) [N, N] for the rows of x [N, D]: squared Euclidean, or Euclidean.

    Computed from the differences x_i − x_j rather than ||x_i||² − 2x_iᵀx_j + ||x_j||², so the
    diagonal is exactly 0 and close pairs lose no precision to cancellation, at O(N²·D)
    memory. The Euclidean distance has gradient 0 (not NaN) where it is 0.
    """
    x = at_least_float32(jnp.asarray(x))
    return _distance(_squared_distances(x, x), squared)


def _label_masks(labels):
    labels = jnp.asarray(labels)
    same = labels[:, None] == labels[None, :]
    return same & _off_diagonal_mask(labels.shape[0]), ~same  # positives (a ≠ p), negatives


def batch_hard_triplet_loss(embeddings, labels, margin, *, squared=False):
    """Batch-hard triplet loss: for each anchor, its farthest positive and closest negative.

        ℓ_a = max(0, max_{p: y_p = y_a, p ≠ a} d(a, p) − min_{n: y_n ≠ y_a} d(a, n) + m),

    averaged over the anchors that have at least one positive and one negative in the batch
    (the others are left out; 0 if there are none). Euclidean distances by default, as in
    Hermans, Beyer & Leibe, "In Defense of the Triplet Loss for Person Re-Identification",
    2017; ``squared=True`` for FaceNet's. Notes 001 §3.4.1 (hard negative mining), §3.4.2 (2).

    Args:
      embeddings: [N, D]. labels: [N] integer labels.
      margin: m ≥ 0.
    """
    distances = pairwise_distances(embeddings, squared=squared)
    positive, negative = _label_masks(labels)
    # Distances are ≥ 0: 0 is neutral for the max, the row's maximum for the min.
    hardest_positive = jnp.max(jnp.where(positive, distances, 0.0), axis=-1)
    row_max = jnp.max(distances, axis=-1, keepdims=True)
    hardest_negative = jnp.min(jnp.where(negative, distances, row_max), axis=-1)
    valid = jnp.any(positive, axis=-1) & jnp.any(negative, axis=-1)
    per_anchor = jax.nn.relu(hardest_positive - hardest_negative + margin)
    return jnp.sum(jnp.where(valid, per_anchor, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def semi_hard_triplet_loss(embeddings, labels, margin, *, squared=True):
    """Semi-hard triplet loss (FaceNet's online mining): every anchor–positive pair with its
    closest negative that is farther than the positive.

    For each pair (a, p), y_p = y_a, p ≠ a, the negative is

        n*(a, p) = argmin { d(a, n) : y_n ≠ y_a, d(a, n) > d(a, p) }     (semi-hard), or, when
                   no negative is farther than the positive, argmax { d(a, n) : y_n ≠ y_a },

        L = mean over the pairs (a, p) of max(0, d(a, p) − d(a, n*) + m).

    FaceNet calls semi-hard the negatives with d(a, p) < d(a, n) < d(a, p) + m; restricting the
    argmin to the margin changes nothing: if the closest farther negative lies beyond the
    margin, every farther one does too and both choices give 0. The fallback to the farthest
    negative is TF-Addons' ``triplet_semihard_loss``. Pairs whose anchor has no negative in the
    batch are left out (0 if no pair is left). Squared Euclidean distances by default
    (FaceNet). Memory O(N³). Notes 001 §3.4.1 (hard negative mining), §3.4.2 (2). Schroff et
    al., "FaceNet", 2015.

    Args:
      embeddings: [N, D]. labels: [N] integer labels.
      margin: m ≥ 0.
    """
    distances = pairwise_distances(embeddings, squared=squared)
    positive, negative = _label_masks(labels)
    d_ap = distances[:, :, None]  # [a, p, 1]
    d_an = distances[:, None, :]  # [a, 1, n]
    farther = negative[:, None, :] & (d_an > d_ap)  # [a, p, n]
    row_max = jnp.max(distances, axis=-1)[:, None, None]
    closest_farther = jnp.min(jnp.where(farther, d_an, row_max), axis=-1)  # [a, p]
    farthest = jnp.max(jnp.where(negative, distances, 0.0), axis=-1)[:, None]  # [a, 1]
    chosen = jnp.where(jnp.any(farther, axis=-1), closest_farther, farthest)
    valid = positive & jnp.any(negative, axis=-1)[:, None]
    per_pair = jax.nn.relu(distances - chosen + margin)
    return jnp.sum(jnp.where(valid, per_pair, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def mi_lower_bound(loss, num_candidates):
    """The InfoNCE bound on mutual information: I(X; Y) ≥ log N − L_InfoNCE (nats).

    N = ``num_candidates`` is the number of candidates in each softmax: the positive plus its
    negatives (1 + K for MoCo, 2B − 1 for NT-Xent, B for in-batch InfoNCE). Notes 001 §3.4.2
    write I(X; Z) ≥ log M − L with M the number of negatives; the bound of Oord et al. 2018 and
    Poole et al., "On Variational Bounds of Mutual Information", 2019, uses M + 1, and log M − L
    is a looser bound. Since L ≥ 0 the estimate never exceeds log N.
    """
    loss = jnp.asarray(loss)
    return jnp.log(jnp.asarray(num_candidates, dtype=loss.dtype)) - loss


# --- Negative-free losses (notes 001 §3.4.3) -----------------------------------------------------


def _cosine(a, b):
    return jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def byol_loss(prediction, target):
    """BYOL's regression loss: the normalised MSE between prediction and target.

        L = (1/B) Σ_b ||p̂_b − ẑ_b||² = (1/B) Σ_b (2 − 2 cos(p_b, z_b)),   x̂ = x/||x||,

    with the target z under stop-gradient (it comes from the EMA target network). Notes 001
    §3.4.3 (2) (L_BYOL). Grill et al., "Bootstrap Your Own Latent", 2020; BYOL symmetrises by
    adding the loss with the views swapped — call it twice.

    Args:
      prediction: [B, D] online prediction q(z). target: [B, D] target projection z'.
    """
    p = at_least_float32(jnp.asarray(prediction))
    z = jax.lax.stop_gradient(at_least_float32(jnp.asarray(target)))
    return jnp.mean(2.0 - 2.0 * _cosine(p, z))


def simsiam_loss(prediction, target):
    """SimSiam's negative cosine similarity with a stop-gradient on the target.

        D(p, z) = (1/B) Σ_b −cos(p_b, stopgrad(z_b)).

    Notes 001 §3.4.3 (2) (SimSiam: θ' ← θ, collapse avoided by the stop-gradient). Chen & He,
    "Exploring Simple Siamese Representation Learning", 2021; the symmetric loss is
    ½ D(p1, z2) + ½ D(p2, z1) — call it twice.

    Args:
      prediction: [B, D] predictor output p. target: [B, D] projection z of the other view.
    """
    p = at_least_float32(jnp.asarray(prediction))
    z = jax.lax.stop_gradient(at_least_float32(jnp.asarray(target)))
    return jnp.mean(-_cosine(p, z))


def barlow_twins_loss(z1, z2, lambd=0.0051, *, eps=1e-5):
    """Barlow Twins: drive the cross-correlation of the standardised views to the identity.

    Each dimension is standardised over the batch, ẑ = (z − μ) / √(σ² + eps) with the biased
    variance σ² (the official code's ``BatchNorm1d(affine=False)``), C = ẑ1ᵀ ẑ2 / N [D, D], and

        L = Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij².

    The first term makes the views invariant, the second decorrelates the dimensions against
    collapse; L = 0 exactly when C = I. Notes 001 §3.4.3 (1) (L_BT). Zbontar et al., "Barlow
    Twins: Self-Supervised Learning via Redundancy Reduction", 2021 (λ = 0.0051 in their code).

    Args:
      z1, z2: [N, D] projections of the two views.
      lambd: λ, the weight of the off-diagonal term.
      eps: added to the variance when standardising.
    """
    c = _cross_correlation(z1, z2, eps)
    on_diagonal = jnp.sum(jnp.square(1.0 - jnp.diagonal(c)))
    off_diagonal = jnp.sum(jnp.where(_off_diagonal_mask(c.shape[0]), jnp.square(c), 0.0))
    return on_diagonal + lambd * off_diagonal


def vicreg_terms(z1, z2, *, eps=1e-4):
    """VICReg's three terms, as in the official code (Bardes, Ponce & LeCun, "VICReg:
    Variance-Invariance-Covariance Regularization for Self-Supervised Learning", 2022).

    For Z, Z' [N, D] with columns z_j, S(z_j) = √(Var(z_j) + eps) (unbiased variance) and
    Cov(Z) = (Z − Z̄)ᵀ(Z − Z̄) / (N − 1):

        invariance = (1/(N·D)) Σ_{n,j} (Z_nj − Z'_nj)²,
        variance   = ½ (1/D) Σ_j max(0, 1 − S(z_j)) + ½ (1/D) Σ_j max(0, 1 − S(z'_j)),
        covariance = (1/D) Σ_{i≠j} Cov(Z)_ij² + (1/D) Σ_{i≠j} Cov(Z')_ij².

    The paper's text sums the two variance terms; its code averages them (the ½ above), which
    is what the default coefficients were tuned with. The variance term is 0 when every
    dimension of both views has S ≥ 1. Notes 001 §3.4.3 (1) (variance-preserving losses).

    Returns:
      dict(invariance=…, variance=…, covariance=…) of scalars.
    """
    z1, z2 = at_least_float32(jnp.asarray(z1)), at_least_float32(jnp.asarray(z2))
    n, d = z1.shape

    def variance_and_covariance(z):
        centered = z - jnp.mean(z, axis=0)
        std = jnp.sqrt(jnp.sum(centered * centered, axis=0) / (n - 1) + eps)
        cov = centered.T @ centered / (n - 1)
        off_diagonal = jnp.sum(jnp.where(_off_diagonal_mask(d), jnp.square(cov), 0.0))
        return jnp.mean(jax.nn.relu(1.0 - std)), off_diagonal / d

    variance1, covariance1 = variance_and_covariance(z1)
    variance2, covariance2 = variance_and_covariance(z2)
    return dict(
        invariance=jnp.mean(jnp.square(z1 - z2)),
        variance=variance1 / 2 + variance2 / 2,
        covariance=covariance1 + covariance2,
    )


def vicreg_loss(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, *, eps=1e-4):
    """VICReg: λ·invariance + μ·variance + ν·covariance (the terms of ``vicreg_terms``).

    Defaults λ = μ = 25, ν = 1 (Bardes et al. 2022). Notes 001 §3.4.3 (1).

    Args:
      z1, z2: [N, D] embeddings of the two views (N ≥ 2).
    """
    terms = vicreg_terms(z1, z2, eps=eps)
    return (
        sim_coeff * terms["invariance"]
        + std_coeff * terms["variance"]
        + cov_coeff * terms["covariance"]
    )


def dino_loss(student_logits, teacher_logits, center, student_temp=0.1, teacher_temp=0.04):
    """DINO's self-distillation cross-entropy between teacher and student views.

    Teacher: P_t = softmax((t − c) / τ_t) under stop-gradient (centering c and sharpening
    τ_t < τ_s against collapse). Student: log P_s = log_softmax(s / τ_s). With the first V_t
    student views being the same (global) crops the teacher saw,

        L = mean over pairs (i < V_t, j < V_s, j ≠ i) of
            (1/B) Σ_b −Σ_k P_t[i, b, k] log P_s[j, b, k].

    Notes 001 §3.4.3 (3) (L_DINO = H(teacher / τ', center(student) / τ) — the notes swap the
    roles; in the paper the teacher output is centred). Caron et al., "Emerging Properties in
    Self-Supervised Vision Transformers", 2021.

    Args:
      student_logits: [V_s, B, K] (global crops first, then local crops).
      teacher_logits: [V_t, B, K] for the V_t ≤ V_s global crops.
      center: [K] (or [1, K]) running mean of the teacher logits, see ``dino_center_update``.
      student_temp, teacher_temp: τ_s, τ_t.
    """
    student = at_least_float32(jnp.asarray(student_logits))
    teacher = jax.lax.stop_gradient(at_least_float32(jnp.asarray(teacher_logits)))
    center = jax.lax.stop_gradient(jnp.asarray(center))
    num_student, num_teacher = student.shape[0], teacher.shape[0]
    if not 1 <= num_teacher <= num_student or num_student < 2:
        raise ValueError(
            f"dino_loss needs 1 ≤ V_t ≤ V_s and a pair i ≠ j; got V_t={num_teacher}, "
            f"V_s={num_student}"
        )
    teacher_probs = jax.nn.softmax((teacher - center) / teacher_temp, axis=-1)
    student_log_probs = jax.nn.log_softmax(student / student_temp, axis=-1)
    total, pairs = 0.0, 0
    for i in range(num_teacher):
        for j in range(num_student):
            if j == i:
                continue
            total = total + jnp.mean(-jnp.sum(teacher_probs[i] * student_log_probs[j], axis=-1))
            pairs += 1
    return total / pairs


def dino_center_update(center, teacher_logits, momentum=0.9):
    """DINO's center: c ← m·c + (1 − m)·mean of the teacher logits over views and batch.

    No gradient flows through it; the result keeps ``center``'s shape and dtype (it is state).
    Notes 001 §3.4.3 (3). Caron et al. 2021 (m = 0.9).

    Args:
      center: [K] or [1, K]. teacher_logits: [..., K], e.g. [V_t, B, K].
    """
    center = jnp.asarray(center)
    teacher = jax.lax.stop_gradient(at_least_float32(jnp.asarray(teacher_logits)))
    batch_mean = jnp.mean(teacher.reshape(-1, teacher.shape[-1]), axis=0)
    updated = momentum * at_least_float32(center) + (1.0 - momentum) * batch_mean
    return updated.astype(center.dtype)


# --- HSIC (notes 001 §3.4.3 (1)) ------------------------------------------------------------------


def _gram(x, kernel, bandwidth):
    if callable(kernel):
        return kernel(x)
    if kernel == "linear":
        return x @ x.T
    if kernel == "gaussian":
        return jnp.exp(-_squared_distances(x, x) / (2.0 * jnp.square(bandwidth)))
    raise ValueError(f"kernel must be 'linear', 'gaussian' or a callable, got {kernel!r}")


def _hsic_from_grams(k, gram_y):
    """trace(K H L H) / (n − 1)², via the doubly centred K: trace(KHLH) = Σ_ij (HKH)_ij L_ij."""
    n = k.shape[0]
    k_centered = k - jnp.mean(k, axis=0) - jnp.mean(k, axis=1, keepdims=True) + jnp.mean(k)
    return jnp.sum(k_centered * gram_y) / (n - 1) ** 2


def hsic(x, y, *, kernel="linear", bandwidth=1.0):
    """The biased empirical Hilbert–Schmidt independence criterion of paired samples.

        HSIC(X, Y) = trace(K H L H) / (n − 1)²,   K_ij = k(x_i, x_j), L_ij = k(y_i, y_j),
        H = I − 11ᵀ/n,

    0 for independent samples in the limit, > 0 for dependent ones. Kernels: ``"linear"``
    k(a, b) = aᵀb (then HSIC = ||X̄ᵀȲ||²_F / (n − 1)², the squared Frobenius norm of the
    cross-covariance up to n²/(n − 1)²), ``"gaussian"`` k(a, b) = exp(−||a − b||² / 2σ²) with
    σ = ``bandwidth``, or a callable mapping [n, D] to an [n, n] Gram matrix. Gretton et al.,
    "Measuring Statistical Dependence with Hilbert-Schmidt Norms", 2005. Notes 001 §3.4.3 (1).

    Args:
      x: [n, D_x]. y: [n, D_y].
    """
    x, y = at_least_float32(jnp.asarray(x)), at_least_float32(jnp.asarray(y))
    return _hsic_from_grams(_gram(x, kernel, bandwidth), _gram(y, kernel, bandwidth))


def hsic_loss(z1, z2, lambd=0.0051, *, eps=1e-5):
    """Barlow Twins with HSIC's off-diagonal term (Tsai et al. 2021).

    With C the cross-correlation of the standardised views as in ``barlow_twins_loss``,

        L = Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} (1 + C_ij)²,

    the off-diagonal entries pushed to −1 instead of 0. Tsai, Bai, Morency & Salakhutdinov,
    "A Note on Connecting Barlow Twins with Negative-Sample-Free Contrastive Learning", 2021,
    connect Barlow Twins to HSIC (with the linear kernel, HSIC is the squared Frobenius norm of
    the cross-covariance, whose entries are Barlow Twins' C_ij up to scale; see ``hsic``) and
    call this variant HSIC_SSL (``--corr_neg_one`` in their code); they report performance
    similar to Barlow Twins'. Notes 001 §3.4.3 (1): Barlow Twins is related to kernel
    independence criteria such as HSIC, which can serve as a loss themselves (see
    ``ssl_hsic_loss`` for Li et al.'s).

    Args:
      z1, z2: [N, D] projections of the two views.
      lambd: λ. eps: added to the variance when standardising.
    """
    c = _cross_correlation(z1, z2, eps)
    on_diagonal = jnp.sum(jnp.square(1.0 - jnp.diagonal(c)))
    off_diagonal = jnp.sum(jnp.where(_off_diagonal_mask(c.shape[0]), jnp.square(1.0 + c), 0.0))
    return on_diagonal + lambd * off_diagonal


def ssl_hsic_loss(z, labels, gamma=1.0, *, kernel="linear", bandwidth=1.0):
    """SSL-HSIC (Li et al. 2021): maximise the dependence of the embedding on the image identity
    while penalising its own variability.

        L = −HSIC(Z, Y) + γ √HSIC(Z, Z),

    HSIC the biased estimator of ``hsic`` with the kernel of ``kernel`` on Z and the label
    kernel l(y, y') = 1[y = y'] on Y (Y = the image each view came from, so HSIC(Z, Y) rewards
    views of one image being similar relative to the average). The square root has gradient 0
    at 0. Li, Pogodin, Sutherland & Gretton, "Self-Supervised Learning with Kernel Dependence
    Maximization", 2021 (they use an unbiased estimator and learned kernel scales; this is the
    biased one). Notes 001 §3.4.3 (1) cite it for the link between Barlow Twins and HSIC.

    Args:
      z: [N, D] all views stacked. labels: [N] integer image (or class) index of each view.
      gamma: γ ≥ 0.
    """
    z = at_least_float32(jnp.asarray(z))
    labels = jnp.asarray(labels)
    k = _gram(z, kernel, bandwidth)
    same = (labels[:, None] == labels[None, :]).astype(k.dtype)
    return -_hsic_from_grams(k, same) + gamma * _safe_sqrt(_hsic_from_grams(k, k))
