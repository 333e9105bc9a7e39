"""Disentanglement metrics: MIG, DCI, the β-VAE score and the FactorVAE score.

Notes 001 §2.1.3 and §4.1: when the generative factors z of a dataset are known, a
representation h = f(x) is disentangled if each factor is captured by its own code dimension,
h_i = f_i(z_π(i)) up to a permutation π and elementwise transforms. Each metric below measures
a different side of that one-to-one correspondence (notes 003: separating factors such as
content and style). All take NumPy or JAX arrays and return a dict with every setting used.

- ``mig`` / ``mig_details`` (Chen et al. 2018): per factor, the gap between the two codes that
  share the most information with it, as a fraction of the factor's entropy.
- ``dci`` (Eastwood & Williams 2018): an importance matrix from gradient-boosted trees, read
  along codes (disentanglement) and along factors (completeness), plus the trees' test
  accuracy (informativeness). ``dci_from_importance`` is the formula on a given matrix.
- ``beta_vae_score`` (Higgins et al. 2017) and ``factor_vae_score`` (Kim & Mnih 2018) sample
  batches in which one factor is held fixed and ask a simple classifier which one it was.

The two sampling scores need a dataset with ``factor_sizes``, ``sample_factors(num, rng)`` and
``sample_observations_from_factors(factors, rng)`` (e.g. `ssl_jax.data.shapes.Shapes`) and a
``representation_fn`` mapping observations [n, ...] to codes [n, D] (NumPy); it is called on
at most ``ENCODE_CHUNK`` observations at a time. ``reference_scores`` gives all four metrics
for the ground-truth factors, a rotation of them and pure noise: the ends of each scale.
"""

import math

import numpy as np

from ssl_jax.errors import UserError

ENCODE_CHUNK = 4096  # observations per representation_fn call in the sampling scores


# ----------------------------------------------------------------------------- input checks


def _check_codes(codes, name: str = "codes") -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise UserError(
            f"{name} have shape {codes.shape}; expected [num_points, num_codes] "
            "(use codes[:, None] for a single code)."
        )
    if not np.issubdtype(codes.dtype, np.number) or np.issubdtype(codes.dtype, np.complexfloating):
        raise UserError(f"{name} must be real numbers, got dtype {codes.dtype}.")
    codes = codes.astype(np.float64)
    if not np.all(np.isfinite(codes)):
        bad = int(np.sum(~np.isfinite(codes).all(axis=1)))
        raise UserError(f"{name} contain NaN or inf in {bad} rows; check the encoder.")
    return codes


def _check_factors(factors, num_points: int, name: str, codes_name: str) -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2:
        raise UserError(
            f"{name} have shape {factors.shape}; expected [num_points, num_factors] "
            "(use factors[:, None] for a single factor)."
        )
    if len(factors) != num_points:
        raise UserError(
            f"{num_points} rows of {codes_name} but {len(factors)} rows of {name}; give one "
            "factor vector per code vector."
        )
    if not np.issubdtype(factors.dtype, np.integer):
        if np.issubdtype(factors.dtype, np.floating) and np.all(factors == np.round(factors)):
            return factors.astype(np.int64)
        raise UserError(f"{name} must be integer (discrete) factor values, got {factors.dtype}.")
    return factors.astype(np.int64)


def _codes_and_factors(codes, factors, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    codes = _check_codes(codes, f"{name}codes")
    return codes, _check_factors(factors, len(codes), f"{name}factors", f"{name}codes")


# ------------------------------------------------------------------------------------- MIG


def discretise_codes(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """Equal-width binning of each code between its min and max: [N, D] → [N, D] in [0, bins).

    Bin edges are min + (max − min)·b/num_bins; the maximum goes into the last bin and a
    constant code into bin 0.
    """
    low, high = codes.min(axis=0), codes.max(axis=0)
    width = np.where(high > low, high - low, 1.0)
    index = np.floor((codes - low) / width * num_bins).astype(np.int64)
    return np.clip(index, 0, num_bins - 1)


def _labels(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Relabel discrete values as 0..n-1: (labels [N], n)."""
    unique, labels = np.unique(values, return_inverse=True)
    return labels.ravel(), len(unique)


def entropy(values) -> float:
    """Empirical entropy in nats of a discrete variable: H = −Σ_v p(v) log p(v). values: [N]."""
    labels, _ = _labels(np.asarray(values))
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def mutual_information(a, b) -> float:
    """Empirical mutual information in nats of two discrete variables a, b: [N].

    I(a; b) = Σ_{a,b} p(a, b) log[p(a, b) / (p(a) p(b))] from the joint histogram.
    """
    a, num_a = _labels(np.asarray(a))
    b, num_b = _labels(np.asarray(b))
    joint = np.bincount(a * num_b + b, minlength=num_a * num_b).reshape(num_a, num_b)
    joint = joint / len(a)
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])))


def mig_details(codes, factors, num_bins: int = 20) -> dict:
    """Mutual Information Gap (Chen et al. 2018) with the MI matrix behind it.

        MIG = (1/K) Σ_k [I(c_{j_k}; v_k) − I(c_{j'_k}; v_k)] / H(v_k)

    where each code c_j is discretised into ``num_bins`` equal-width bins, I and H are
    empirical (nats), and j_k, j'_k are the codes with the largest and second-largest MI with
    factor v_k. 1 when each factor is in one code and in no other; 0 when the best two codes
    tie (e.g. a duplicated code). Equal-width binning caps the score of an exact code below 1
    for a factor with more than ``num_bins`` values.

    codes: [N, D] real, D ≥ 2; factors: [N, K] integer, each factor taking ≥ 2 values.
    """
    codes, factors = _codes_and_factors(codes, factors)
    if codes.shape[1] < 2:
        raise UserError(f"MIG needs at least 2 code dimensions, got {codes.shape[1]}.")
    if num_bins < 2:
        raise UserError(f"num_bins={num_bins}; use at least 2 bins.")
    binned = discretise_codes(codes, num_bins)
    factor_entropy = np.array([entropy(f) for f in factors.T])
    if np.any(factor_entropy == 0):
        constant = int(np.argmax(factor_entropy == 0))
        raise UserError(
            f"factor {constant} takes a single value in the sample; MIG divides by its "
            "entropy, so drop that factor or sample more points."
        )
    info = np.array([[mutual_information(c, f) for f in factors.T] for c in binned.T])
    top_two = -np.sort(-info, axis=0)[:2]  # [2, K], largest first
    gap = (top_two[0] - top_two[1]) / factor_entropy
    return {
        "metric": "mig",
        "mig": float(np.mean(gap)),
        "mig_per_factor": gap.tolist(),
        "best_code_per_factor": np.argmax(info, axis=0).tolist(),
        "mutual_information": info.tolist(),  # [D, K], nats
        "factor_entropy": factor_entropy.tolist(),  # [K], nats
        "settings": {
            "num_bins": num_bins,
            "binning": "equal-width between each code's min and max",
            "units": "nats",
            "num_points": len(codes),
            "num_codes": codes.shape[1],
            "num_factors": factors.shape[1],
        },
    }


def mig(codes, factors, num_bins: int = 20) -> float:
    """MIG of codes [N, D] against discrete factors [N, K]; see `mig_details`."""
    return mig_details(codes, factors, num_bins)["mig"]


# ------------------------------------------------------------------------------------- DCI


def dci_from_importance(importance) -> dict:
    """Disentanglement and completeness of an importance matrix (Eastwood & Williams 2018).

    importance R: [D codes, K factors], R_ij ≥ 0 = how much code i is used to predict factor j.

        P_ij = R_ij / Σ_k R_ik,   D_i = 1 − H_K(P_i·),   ρ_i = Σ_j R_ij / Σ_ij R_ij
        disentanglement = Σ_i ρ_i D_i
        P̃_ij = R_ij / Σ_i R_ij,   C_j = 1 − H_D(P̃_·j),   completeness = (1/K) Σ_j C_j

    H_K is the entropy with logarithms to base K (so 0 ≤ D_i ≤ 1), H_D to base D. A code
    with zero total importance gets ρ_i = 0; a factor no code predicts gets C_j = 0.
    """
    r = np.abs(np.asarray(importance, dtype=np.float64))
    if r.ndim != 2 or min(r.shape) < 2:
        raise UserError(
            f"importance has shape {r.shape}; expected [num_codes, num_factors], both ≥ 2."
        )
    if not np.all(np.isfinite(r)) or r.sum() == 0:
        raise UserError("importance must be finite with a positive total.")
    num_codes, num_factors = r.shape

    def one_minus_entropy(p, base):  # rows of p sum to 1 (or are all 0)
        logs = np.log(np.where(p > 0, p, 1.0)) / math.log(base)
        return 1.0 + np.sum(p * logs, axis=1)

    code_total = r.sum(axis=1)
    per_code = one_minus_entropy(r / np.where(code_total > 0, code_total, 1)[:, None], num_factors)
    per_code = np.where(code_total > 0, per_code, 0.0)
    code_weight = code_total / code_total.sum()
    factor_total = r.sum(axis=0)
    per_factor = one_minus_entropy((r / np.where(factor_total > 0, factor_total, 1)).T, num_codes)
    per_factor = np.where(factor_total > 0, per_factor, 0.0)
    return {
        "disentanglement": float(np.sum(code_weight * per_code)),
        "completeness": float(np.mean(per_factor)),
        "disentanglement_per_code": per_code.tolist(),
        "code_weight": code_weight.tolist(),
        "completeness_per_factor": per_factor.tolist(),
    }


def dci(
    codes_train,
    factors_train,
    codes_test,
    factors_test,
    *,
    n_estimators: int = 20,
    max_depth: int = 3,
    seed: int = 0,
) -> dict:
    """DCI (Eastwood & Williams 2018) with gradient-boosted trees as the per-factor predictors.

    For each factor j one `GradientBoostingClassifier` (``n_estimators`` trees per class,
    depth ``max_depth``; the paper's setting is 100 trees, 20 keeps it fast) predicts v_j from
    all codes; its impurity-based ``feature_importances_`` (summing to 1) are column j of R.
    Disentanglement and completeness follow `dci_from_importance`; informativeness is the
    mean test accuracy of the K classifiers.

    codes_*: [N, D] real, D ≥ 2; factors_*: [N, K] integer, K ≥ 2.
    """
    codes_train, factors_train = _codes_and_factors(codes_train, factors_train, "train ")
    codes_test, factors_test = _codes_and_factors(codes_test, factors_test, "test ")
    if codes_train.shape[1] != codes_test.shape[1]:
        raise UserError(
            f"train codes have {codes_train.shape[1]} dimensions, test {codes_test.shape[1]}."
        )
    if factors_train.shape[1] != factors_test.shape[1]:
        raise UserError(
            f"train factors have {factors_train.shape[1]} columns, test {factors_test.shape[1]}."
        )
    num_codes, num_factors = codes_train.shape[1], factors_train.shape[1]
    if num_codes < 2 or num_factors < 2:
        raise UserError(
            f"DCI needs at least 2 codes and 2 factors, got {num_codes} and {num_factors}."
        )
    from sklearn.ensemble import GradientBoostingClassifier  # slow to import: on use

    importance = np.zeros((num_codes, num_factors))
    train_accuracy, test_accuracy = [], []
    for j in range(num_factors):
        if len(np.unique(factors_train[:, j])) < 2:
            raise UserError(
                f"factor {j} takes a single value in the training sample; DCI needs every "
                "factor to vary: drop it or sample more points."
            )
        model = GradientBoostingClassifier(
            n_estimators=n_estimators, max_depth=max_depth, random_state=seed
        )
        model.fit(codes_train, factors_train[:, j])
        importance[:, j] = model.feature_importances_
        train_accuracy.append(float(model.score(codes_train, factors_train[:, j])))
        test_accuracy.append(float(model.score(codes_test, factors_test[:, j])))
    scores = dci_from_importance(importance)
    return {
        "metric": "dci",
        "disentanglement": scores["disentanglement"],
        "completeness": scores["completeness"],
        "informativeness": float(np.mean(test_accuracy)),
        "informativeness_train": float(np.mean(train_accuracy)),
        "test_accuracy_per_factor": test_accuracy,
        "train_accuracy_per_factor": train_accuracy,
        "disentanglement_per_code": scores["disentanglement_per_code"],
        "completeness_per_factor": scores["completeness_per_factor"],
        "importance": importance.tolist(),  # [D, K]
        "settings": {
            "predictor": "sklearn GradientBoostingClassifier, one per factor",
            "n_estimators": n_estimators,
            "max_depth": max_depth,
            "seed": seed,
            "importance": "feature_importances_ (impurity based)",
            "informativeness": "mean test accuracy over factors",
            "train_points": len(codes_train),
            "test_points": len(codes_test),
            "num_codes": num_codes,
            "num_factors": num_factors,
        },
    }


# ------------------------------------------------------------------ fixed-factor batch scores


def _encode(representation_fn, dataset, factors: np.ndarray, rng) -> np.ndarray:
    """Codes [N, D] for factors [N, K]: render, then encode, ``ENCODE_CHUNK`` at a time."""
    codes = []
    for start in range(0, len(factors), ENCODE_CHUNK):
        chunk = factors[start : start + ENCODE_CHUNK]
        observations = dataset.sample_observations_from_factors(chunk, rng)
        out = np.asarray(representation_fn(observations))
        if out.ndim != 2 or len(out) != len(chunk):
            raise UserError(
                f"representation_fn returned shape {out.shape} for {len(chunk)} observations; "
                "it must return codes [num_observations, num_codes]."
            )
        codes.append(_check_codes(out, "representation_fn outputs"))
    return np.concatenate(codes)


def _check_sampling_args(dataset, batch_size: int, **counts: int) -> int:
    needed = ("factor_sizes", "sample_factors", "sample_observations_from_factors")
    missing = [name for name in needed if not hasattr(dataset, name)]
    if missing:
        raise UserError(
            f"dataset {type(dataset).__name__} lacks {', '.join(missing)}; pass a dataset "
            "with known factors such as ssl_jax.data.shapes.Shapes()."
        )
    for name, value in {"batch_size": batch_size, **counts}.items():
        if int(value) < 2:
            raise UserError(f"{name}={value}; use at least 2.")
    return len(dataset.factor_sizes)


def _beta_vae_points(representation_fn, dataset, rng, num_points: int, batch_size: int):
    """Features [num_points, D] (mean |c(x1) − c(x2)| over a batch of pairs sharing factor k)
    and labels k [num_points]."""
    num_factors = len(dataset.factor_sizes)
    labels = rng.integers(num_factors, size=num_points)
    points_per_call = max(1, ENCODE_CHUNK // batch_size)
    features = []
    for start in range(0, num_points, points_per_call):
        fixed = np.repeat(labels[start : start + points_per_call], batch_size)
        first = np.asarray(dataset.sample_factors(len(fixed), rng))
        second = np.asarray(dataset.sample_factors(len(fixed), rng))
        rows = np.arange(len(fixed))
        second[rows, fixed] = first[rows, fixed]
        both = _encode(representation_fn, dataset, np.concatenate([first, second]), rng)
        diff = np.abs(both[: len(fixed)] - both[len(fixed) :])
        features.append(diff.reshape(-1, batch_size, diff.shape[1]).mean(axis=1))
    return np.concatenate(features), labels


def beta_vae_score(
    representation_fn,
    dataset,
    rng,
    batch_size: int = 64,
    num_train: int = 2000,
    num_eval: int = 1000,
) -> dict:
    """β-VAE disentanglement score (Higgins et al. 2017): which factor did the pairs share?

    One point: pick a factor k uniformly; draw ``batch_size`` pairs of factor vectors with
    v_k equal within each pair (everything else independent); the feature is
    z_diff = (1/B) Σ_b |c(x_b,1) − c(x_b,2)|, the label is k. A linear classifier (sklearn
    ``LogisticRegression``, C = 1, on standardised z_diff) is fitted on ``num_train`` points
    and scored on ``num_eval`` fresh ones. Chance is 1/K; an entangled but informative code
    can still score high, which is what the FactorVAE score fixes.

    rng: ``np.random.Generator`` or int seed. The papers use 10,000 / 5,000 points.
    """
    _check_sampling_args(dataset, batch_size, num_train=num_train, num_eval=num_eval)
    rng = np.random.default_rng(rng)
    train_x, train_y = _beta_vae_points(representation_fn, dataset, rng, num_train, batch_size)
    eval_x, eval_y = _beta_vae_points(representation_fn, dataset, rng, num_eval, batch_size)
    if len(np.unique(train_y)) < 2:
        raise UserError(f"num_train={num_train} drew a single factor; use more points.")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    classifier.fit(train_x, train_y)
    return {
        "metric": "beta_vae",
        "train_accuracy": float(classifier.score(train_x, train_y)),
        "eval_accuracy": float(classifier.score(eval_x, eval_y)),
        "settings": {
            "batch_size": batch_size,
            "num_train": num_train,
            "num_eval": num_eval,
            "classifier": "StandardScaler + LogisticRegression(C=1, lbfgs)",
            "feature": "mean |c(x1) - c(x2)| over the batch of pairs",
            "chance": 1.0 / len(dataset.factor_sizes),
        },
    }


def _factor_vae_votes(codes_fn, dataset, rng, num_points, batch_size, scale, active):
    """Vote counts [D, K]: how often code d had the smallest normalised variance in a batch
    whose factor k was held fixed."""
    num_factors = len(dataset.factor_sizes)
    votes = np.zeros((len(scale), num_factors), np.int64)
    labels = rng.integers(num_factors, size=num_points)
    points_per_call = max(1, ENCODE_CHUNK // batch_size)
    for start in range(0, num_points, points_per_call):
        chunk_labels = labels[start : start + points_per_call]
        factors = np.asarray(dataset.sample_factors(len(chunk_labels) * batch_size, rng))
        factors = factors.reshape(len(chunk_labels), batch_size, num_factors)
        batches = np.arange(len(chunk_labels))
        shared = factors[batches, 0, chunk_labels]  # one value of factor k per batch
        factors[batches, :, chunk_labels] = shared[:, None]
        codes = codes_fn(factors.reshape(-1, num_factors)) / scale
        variance = codes.reshape(len(chunk_labels), batch_size, -1).var(axis=1, ddof=1)
        variance[:, ~active] = np.inf
        np.add.at(votes, (np.argmin(variance, axis=1), chunk_labels), 1)
    return votes


def factor_vae_score(
    representation_fn,
    dataset,
    rng,
    batch_size: int = 64,
    num_train: int = 2000,
    num_eval: int = 1000,
    num_variance_estimate: int = 5000,
    min_variance_ratio: float = 1e-4,
) -> dict:
    """FactorVAE disentanglement score (Kim & Mnih 2018): majority vote on argmin variance.

    Each code is divided by its standard deviation s_d over ``num_variance_estimate`` random
    observations; codes with variance ≤ ``min_variance_ratio`` × the largest are pruned
    (collapsed, they would win every argmin). One point: pick a factor k, draw a batch with
    v_k fixed to one random value and the rest random; the vote is (argmin_d Var_b[c_d / s_d],
    k). The classifier maps each code d to its most-voted factor, fitted on ``num_train``
    votes; accuracy = votes it gets right. Chance ≈ 1/K. With no active code both accuracies
    are 0. rng: ``np.random.Generator`` or int seed. The papers use 10,000 / 5,000 points.
    """
    num_factors = _check_sampling_args(
        dataset,
        batch_size,
        num_train=num_train,
        num_eval=num_eval,
        num_variance_estimate=num_variance_estimate,
    )
    rng = np.random.default_rng(rng)

    def codes_fn(factors):
        return _encode(representation_fn, dataset, factors, rng)

    sample = codes_fn(np.asarray(dataset.sample_factors(num_variance_estimate, rng)))
    variance = sample.var(axis=0, ddof=1)
    active = variance > min_variance_ratio * variance.max()
    settings = {
        "batch_size": batch_size,
        "num_train": num_train,
        "num_eval": num_eval,
        "num_variance_estimate": num_variance_estimate,
        "min_variance_ratio": min_variance_ratio,
        "classifier": "majority vote: code -> most frequent fixed factor",
        "chance": 1.0 / num_factors,
    }
    if not np.any(active):
        return {
            "metric": "factor_vae",
            "train_accuracy": 0.0,
            "eval_accuracy": 0.0,
            "num_active_codes": 0,
            "settings": settings,
        }
    scale = np.sqrt(np.where(active, variance, 1.0))
    train_votes = _factor_vae_votes(codes_fn, dataset, rng, num_train, batch_size, scale, active)
    eval_votes = _factor_vae_votes(codes_fn, dataset, rng, num_eval, batch_size, scale, active)
    factor_of_code = np.argmax(train_votes, axis=1)
    codes_index = np.arange(len(factor_of_code))
    return {
        "metric": "factor_vae",
        "train_accuracy": float(train_votes[codes_index, factor_of_code].sum() / num_train),
        "eval_accuracy": float(eval_votes[codes_index, factor_of_code].sum() / num_eval),
        "num_active_codes": int(active.sum()),
        "factor_of_code": factor_of_code.tolist(),
        "train_votes": train_votes.tolist(),  # [D, K]
        "settings": settings,
    }


# ------------------------------------------------------------------------ reference scores


class _FactorsAsObservations:
    """A dataset whose observations are its factors (float), so that a representation_fn can
    be a function of the true factors: the ideal encoder, and transforms of it."""

    def __init__(self, dataset):
        self.factor_sizes = tuple(dataset.factor_sizes)
        self._dataset = dataset

    def sample_factors(self, num, rng):
        return self._dataset.sample_factors(num, rng)

    def sample_observations_from_factors(self, factors, rng=None):
        del rng
        return np.asarray(factors, np.float64)


def reference_scores(dataset, rng, num_points: int = 10_000, dci_points: int | None = None) -> dict:
    """All four metrics for three reference codes of ``dataset``'s factors: the ends of each scale.

    - ``factors``: the true factors, each standardised (an ideal encoder, D = K);
    - ``rotation``: the standardised factors times a random orthogonal K×K matrix (all the
      information, fully entangled);
    - ``noise``: K standard normal codes independent of the factors.

    MIG uses ``num_points`` samples; DCI trains and tests on ``dci_points`` each (default
    ``num_points``); the sampling scores use num_train = ``num_points``, num_eval =
    ``num_points // 2`` and batch size 64. Observations are never rendered: the
    representations are functions of the factors themselves.
    """
    rng = np.random.default_rng(rng)
    dci_points = dci_points or num_points
    sizes = np.asarray(dataset.factor_sizes, np.float64)
    num_factors = len(sizes)
    # Standardise with the exact mean and std of a uniform index on 0..n-1.
    mean, std = (sizes - 1) / 2, np.sqrt(np.maximum(sizes**2 - 1, 1) / 12)
    rotation, _ = np.linalg.qr(rng.normal(size=(num_factors, num_factors)))
    noise_rng = np.random.default_rng(rng.integers(2**32))
    transforms = {
        "factors": lambda f: (f - mean) / std,
        "rotation": lambda f: ((f - mean) / std) @ rotation,
        "noise": lambda f: noise_rng.normal(size=f.shape),
    }
    as_observations = _FactorsAsObservations(dataset)
    results = {}
    for name, transform in transforms.items():
        factors = np.asarray(dataset.sample_factors(num_points, rng))
        train = np.asarray(dataset.sample_factors(dci_points, rng))
        test = np.asarray(dataset.sample_factors(dci_points, rng))
        dci_result = dci(transform(train), train, transform(test), test)
        beta = beta_vae_score(
            transform, as_observations, rng, num_train=num_points, num_eval=num_points // 2
        )
        factor_vae = factor_vae_score(
            transform, as_observations, rng, num_train=num_points, num_eval=num_points // 2
        )
        results[name] = {
            "mig": mig(transform(factors), factors),
            "dci_disentanglement": dci_result["disentanglement"],
            "dci_completeness": dci_result["completeness"],
            "dci_informativeness": dci_result["informativeness"],
            "beta_vae_eval_accuracy": beta["eval_accuracy"],
            "factor_vae_eval_accuracy": factor_vae["eval_accuracy"],
        }
    return {
        "metric": "reference_scores",
        "scores": results,
        "settings": {
            "factor_sizes": list(dataset.factor_sizes),
            "num_points": num_points,
            "dci_points": dci_points,
            "mig_num_bins": 20,
            "dci_n_estimators": 20,
            "batch_size": 64,
        },
    }


def all_scores(
    representation_fn,
    dataset,
    seed: int = 0,
    *,
    num_points: int = 2000,
    num_train: int = 300,
    num_eval: int = 150,
    batch_size: int = 64,
) -> dict:
    """MIG, DCI, β-VAE and FactorVAE scores of one ``representation_fn`` on ``dataset``.

    MIG on ``num_points`` sampled observations; DCI trained on ``num_points`` and tested on
    ``num_points`` more; the two sampling scores with ``num_train`` / ``num_eval`` points of
    ``batch_size`` observations each (smaller than the papers' 10,000 / 5,000 so that an
    encoder on a CPU is scored in about a minute; the settings say so).
    """
    rng = np.random.default_rng(seed)
    draw = lambda n: np.asarray(dataset.sample_factors(n, rng))
    factors, train, test = draw(num_points), draw(num_points), draw(num_points)
    codes = lambda f: _encode(representation_fn, dataset, f, rng)
    mig_result = mig_details(codes(factors), factors)
    dci_result = dci(codes(train), train, codes(test), test, seed=seed)
    beta = beta_vae_score(
        representation_fn, dataset, rng, batch_size, num_train=num_train, num_eval=num_eval
    )
    factor_vae = factor_vae_score(
        representation_fn, dataset, rng, batch_size, num_train=num_train, num_eval=num_eval
    )
    return {
        "mig": mig_result["mig"],
        "dci_disentanglement": dci_result["disentanglement"],
        "dci_completeness": dci_result["completeness"],
        "dci_informativeness": dci_result["informativeness"],
        "beta_vae_eval_accuracy": beta["eval_accuracy"],
        "factor_vae_eval_accuracy": factor_vae["eval_accuracy"],
        "settings": {
            "dataset": repr(dataset),
            "seed": seed,
            "mig": {"num_points": num_points, "num_bins": 20, "units": "nats"},
            "dci": {"train_points": num_points, "test_points": num_points, "n_estimators": 20},
            "beta_vae": beta["settings"],
            "factor_vae": factor_vae["settings"],
        },
    }
