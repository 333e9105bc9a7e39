"""The Shapes dataset and the disentanglement metrics (MIG, DCI, β-VAE, FactorVAE)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.data import load_dataset
from ssl_jax.data.shapes import Shapes
from ssl_jax.errors import UserError
from ssl_jax.evaluation.disentanglement import (
    beta_vae_score,
    dci,
    dci_from_importance,
    factor_vae_score,
    mig,
    mig_details,
    mutual_information,
    reference_scores,
)

# A small variant whose 972 factor combinations all render differently (checked below).
SMALL = dict(image_size=24, factor_sizes=(3, 3, 3, 6, 6))


@pytest.fixture(scope="module")
def small():
    return Shapes(**SMALL)


@pytest.fixture(scope="module")
def ideal_encoder(small):
    """The exact inverse of the small renderer: image → its factors, by table look-up."""
    factors = small.all_factors()
    images = small.sample_observations_from_factors(factors)
    table = {image.tobytes(): f for image, f in zip(images, factors, strict=True)}

    def encode(batch):
        return np.stack([table[image.tobytes()] for image in batch]).astype(np.float64)

    return encode


def _rotation(dim, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q


def _standardise(x):
    return (x - x.mean(axis=0)) / x.std(axis=0)


# ----------------------------------------------------------------------------------- Shapes


def test_full_size_images_are_binary_uint8_64x64x1():
    shapes = Shapes()
    factors = shapes.sample_factors(50, np.random.default_rng(0))
    images = shapes.sample_observations_from_factors(factors)
    assert factors.shape == (50, 5) and np.issubdtype(factors.dtype, np.integer)
    assert images.shape == (50, 64, 64, 1) and images.dtype == np.uint8
    assert set(np.unique(images)) <= {0, 255}
    assert np.all(images.reshape(50, -1).max(axis=1) == 255)  # every shape is drawn
    assert shapes.factor_sizes == (3, 6, 40, 32, 32) and shapes.num_combinations == 737_280
    assert shapes.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")


def test_sampled_factors_are_uniform_over_each_range(small):
    factors = small.sample_factors(6000, 1)
    for column, size in enumerate(small.factor_sizes):
        counts = np.bincount(factors[:, column], minlength=size)
        assert len(counts) == size
        assert np.all(np.abs(counts / 6000 - 1 / size) < 0.03)


def test_rendering_is_deterministic_and_ignores_the_rng(small):
    factors = small.sample_factors(200, 2)
    first = small.sample_observations_from_factors(factors, np.random.default_rng(0))
    again = small.sample_observations_from_factors(factors, np.random.default_rng(99))
    np.testing.assert_array_equal(first, again)
    assert np.array_equal(small.sample_factors(10, 3), small.sample_factors(10, 3))


def test_every_factor_combination_of_the_small_variant_renders_a_distinct_image(small):
    images = small.sample_observations_from_factors(small.all_factors())
    assert len({image.tobytes() for image in images}) == small.num_combinations == 972


def test_full_size_images_coincide_only_under_the_shapes_rotational_symmetries():
    shapes = Shapes()
    factors = shapes.all_factors()
    factors = factors[(factors[:, 3] == 0) & (factors[:, 4] == 0)]  # 3 × 6 × 40 at one place
    images = shapes.sample_observations_from_factors(factors).reshape(3, 6, 40, -1)
    # The square repeats every quarter turn (10 steps), the ellipse every half turn (20).
    assert len({image.tobytes() for image in images.reshape(720, -1)}) == 6 * (10 + 20 + 40)
    np.testing.assert_array_equal(images[0, :, :10], images[0, :, 10:20])
    np.testing.assert_array_equal(images[1, :, :20], images[1, :, 20:])
    assert not np.any(np.all(images[2, :, :20] == images[2, :, 20:], axis=-1))


def test_one_position_step_translates_the_image_exactly(small):
    factors = small.sample_factors(300, 4)
    factors[:, 3:] = np.minimum(factors[:, 3:], 4)  # room for one more step in x and y
    images = small.sample_observations_from_factors(factors)[..., 0]
    for column, axis in ((3, 2), (4, 1)):
        moved = factors.copy()
        moved[:, column] += 1
        shifted = np.roll(images, small.position_step, axis=axis)
        np.testing.assert_array_equal(
            small.sample_observations_from_factors(moved)[..., 0], shifted
        )


def test_centre_of_mass_increases_with_pos_x_and_pos_y():
    shapes = Shapes()
    # pos_x moves mass along columns (sum over rows, axis 1); pos_y along rows (axis 2).
    for column, summed_axis in ((3, 1), (4, 2)):
        factors = np.tile([2, 3, 7, 10, 10], (32, 1))
        factors[:, column] = np.arange(32)
        images = shapes.sample_observations_from_factors(factors)[..., 0].astype(np.float64)
        profile = images.sum(axis=summed_axis)  # [32, 64]
        centre = (profile * np.arange(64)).sum(axis=1) / profile.sum(axis=1)
        np.testing.assert_allclose(np.diff(centre), shapes.position_step, atol=1e-9)


def test_larger_scale_draws_more_pixels_for_every_shape():
    shapes = Shapes()
    for shape in range(3):
        factors = np.tile([shape, 0, 5, 16, 16], (6, 1))
        factors[:, 1] = np.arange(6)
        area = (shapes.sample_observations_from_factors(factors) > 0).sum(axis=(1, 2, 3))
        assert np.all(np.diff(area) > 0), (shape, area)


def test_shapes_rejects_out_of_range_factors_and_positions_that_do_not_fit(small):
    with pytest.raises(UserError, match="pos_x"):
        small.sample_observations_from_factors(np.array([[0, 0, 0, 6, 0]]))
    with pytest.raises(UserError, match="expected"):
        small.sample_observations_from_factors(np.zeros((3, 4), np.int64))
    with pytest.raises(UserError, match="do not fit"):
        Shapes(image_size=16, factor_sizes=(3, 3, 4, 32, 32))


# -------------------------------------------------------------------------------------- MIG


def _balanced_grid(*sizes, repeats=3):
    """Every combination of independent uniform factors, ``repeats`` times: [N, len(sizes)]."""
    grids = np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")
    return np.tile(np.stack([g.ravel() for g in grids], axis=1), (repeats, 1))


def test_mig_matches_closed_form_for_a_code_that_explains_two_factors():
    n1, n2 = 4, 3
    factors = _balanced_grid(n1, n2)
    f1, f2 = factors.T
    # Code 0 = f1·n2 + f2 holds both factors; code 1 = f1 // 2 holds one bit of f1.
    codes = np.stack([f1 * n2 + f2, f1 // 2], axis=1).astype(np.float64)
    # n1·n2 bins over [0, n1·n2 − 1] put each value of code 0 in its own bin: binning is exact.
    result = mig_details(codes, factors, num_bins=n1 * n2)
    expected_info = [[math.log(n1), math.log(n2)], [math.log(2), 0.0]]
    np.testing.assert_allclose(result["mutual_information"], expected_info, atol=1e-12)
    # f1: (log 4 − log 2) / log 4 = 1/2;  f2: (log 3 − 0) / log 3 = 1.
    np.testing.assert_allclose(result["mig_per_factor"], [0.5, 1.0], atol=1e-6)
    assert abs(result["mig"] - 0.75) < 1e-6
    assert result["settings"]["num_bins"] == 12


def test_mig_is_zero_for_a_factor_whose_code_is_duplicated():
    factors = _balanced_grid(5, 4)
    codes = factors[:, [0, 0, 1]].astype(np.float64)
    result = mig_details(codes, factors)
    np.testing.assert_allclose(result["mig_per_factor"], [0.0, 1.0], atol=1e-12)
    assert abs(result["mig"] - 0.5) < 1e-12


def test_mutual_information_of_independent_and_identical_variables():
    a, b = _balanced_grid(6, 5).T
    assert abs(mutual_information(a, b)) < 1e-12
    assert abs(mutual_information(a, a) - math.log(6)) < 1e-12


def test_mig_is_near_one_for_permuted_rescaled_factors_and_lower_for_rotation_and_noise(small):
    factors = small.sample_factors(4000, 5)
    # Permuted, with a different affine map (and sign) per code: binning does not see these.
    codes = factors[:, [3, 0, 4, 1, 2]] * np.array([2.0, -0.5, 7.0, 1.0, -3.0]) + 1.0
    exact = mig(codes, factors[:, [3, 0, 4, 1, 2]])
    assert exact == mig(factors.astype(float), factors) and exact > 0.95
    rotated = mig(_standardise(factors.astype(float)) @ _rotation(5), factors)
    noise = mig(np.random.default_rng(0).normal(size=(4000, 5)), factors)
    assert rotated < 0.6 * exact
    assert noise < 0.05
    assert mig(jnp.asarray(codes), jnp.asarray(factors[:, [3, 0, 4, 1, 2]])) == exact


# -------------------------------------------------------------------------------------- DCI


def test_dci_formula_on_hand_computed_importance_matrices():
    identity = dci_from_importance(np.eye(4))
    assert identity["disentanglement"] == pytest.approx(1) == identity["completeness"]
    uniform = dci_from_importance(np.ones((4, 4)))
    assert abs(uniform["disentanglement"]) < 1e-12 and abs(uniform["completeness"]) < 1e-12
    # One code predicts all three factors: not disentangled, but each factor is complete.
    one_code = dci_from_importance(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
    assert abs(one_code["disentanglement"]) < 1e-12
    assert one_code["completeness"] == pytest.approx(1.0)
    # R = [[1, 1], [0, 2]]: D = ½·0 + ½·1; C = mean(1, 1 − H₂(1/3, 2/3)).
    mixed = dci_from_importance(np.array([[1.0, 1.0], [0.0, 2.0]]))
    h = -(1 / 3) * math.log2(1 / 3) - (2 / 3) * math.log2(2 / 3)
    assert abs(mixed["disentanglement"] - 0.5) < 1e-12
    assert abs(mixed["completeness"] - (1 + (1 - h)) / 2) < 1e-12


def test_dci_is_near_one_for_monotone_transforms_of_factors_and_low_for_noise(small):
    train, test = small.sample_factors(800, 6), small.sample_factors(400, 7)

    def monotone_codes(f):  # permuted, each code a different increasing or decreasing map
        f = f.astype(np.float64)
        return np.stack([np.exp(f[:, 2]), -f[:, 0], f[:, 4] ** 3, np.log1p(f[:, 1]), f[:, 3]], 1)

    exact = dci(monotone_codes(train), train, monotone_codes(test), test, n_estimators=10)
    assert exact["disentanglement"] > 0.9 and exact["completeness"] > 0.9
    assert exact["informativeness"] > 0.95
    assert np.argmax(np.asarray(exact["importance"]), axis=0).tolist() == [1, 3, 0, 4, 2]
    assert exact["settings"]["n_estimators"] == 10

    rotation = _rotation(5)
    rotated = dci(
        _standardise(train.astype(float)) @ rotation,
        train,
        _standardise(test.astype(float)) @ rotation,
        test,
        n_estimators=10,
    )
    assert rotated["disentanglement"] < exact["disentanglement"] - 0.3

    rng = np.random.default_rng(8)
    noise = dci(rng.normal(size=(800, 5)), train, rng.normal(size=(400, 5)), test, n_estimators=10)
    assert noise["disentanglement"] < 0.2 and noise["completeness"] < 0.2
    assert noise["informativeness"] < 0.5  # chance is 1/3 to 1/6 per factor


# -------------------------------------------------------------- β-VAE and FactorVAE scores


def test_fixed_factor_scores_are_near_one_for_an_ideal_encoder_of_the_images(small, ideal_encoder):
    def rescaled(images):  # permuted and monotonically transformed factors
        f = ideal_encoder(images)
        return np.stack([f[:, 3] * 4.0, np.exp(f[:, 0]), -f[:, 4], f[:, 1] ** 2, f[:, 2]], 1)

    beta = beta_vae_score(rescaled, small, np.random.default_rng(0), num_train=300, num_eval=200)
    factor = factor_vae_score(
        rescaled, small, 1, num_train=300, num_eval=200, num_variance_estimate=1000
    )
    assert beta["eval_accuracy"] > 0.95 and beta["train_accuracy"] > 0.95
    assert factor["eval_accuracy"] > 0.95 and factor["train_accuracy"] > 0.95
    assert factor["factor_of_code"] == [3, 0, 4, 1, 2]
    assert beta["settings"]["batch_size"] == 64 == factor["settings"]["batch_size"]


def test_fixed_factor_scores_drop_for_rotated_codes_and_reach_chance_for_noise(
    small, ideal_encoder
):
    mean = (np.asarray(small.factor_sizes) - 1) / 2
    rotation = _rotation(5, seed=3)

    def rotated(images):
        return (ideal_encoder(images) - mean) @ rotation

    noise_rng = np.random.default_rng(10)

    def noise(images):
        return noise_rng.normal(size=(len(images), 5))

    args = dict(num_train=300, num_eval=300)
    factor_rotated = factor_vae_score(rotated, small, 2, num_variance_estimate=1000, **args)
    factor_noise = factor_vae_score(noise, small, 3, num_variance_estimate=1000, **args)
    beta_noise = beta_vae_score(noise, small, 4, **args)
    assert factor_rotated["eval_accuracy"] < 0.85
    assert factor_noise["eval_accuracy"] < 0.35  # chance 0.2
    assert beta_noise["eval_accuracy"] < 0.35


def test_factor_vae_prunes_a_constant_code(small, ideal_encoder):
    def with_constant(images):
        f = ideal_encoder(images)
        return np.concatenate([np.full((len(f), 1), 7.0), f], axis=1)

    result = factor_vae_score(
        with_constant, small, 5, num_train=100, num_eval=100, num_variance_estimate=500
    )
    assert result["num_active_codes"] == 5
    assert np.sum(result["train_votes"][0]) == 0 and result["eval_accuracy"] > 0.95


def test_reference_scores_order_factors_above_rotation_above_noise(small):
    scores = reference_scores(small, 0, num_points=600)["scores"]
    for metric in ("mig", "dci_disentanglement", "dci_completeness", "factor_vae_eval_accuracy"):
        assert scores["factors"][metric] > scores["rotation"][metric] > scores["noise"][metric]
    assert scores["factors"]["beta_vae_eval_accuracy"] > scores["noise"]["beta_vae_eval_accuracy"]


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "codes, factors, message",
    [
        (
            np.zeros((10, 3)),
            np.zeros((9, 2), np.int64),
            "10 rows of (train )?codes but 9 rows of (train )?factors",
        ),
        (np.full((10, 3), np.nan), np.zeros((10, 2), np.int64), "NaN"),
        (np.zeros(10), np.zeros((10, 2), np.int64), "expected \\[num_points, num_codes\\]"),
    ],
    ids=["different_lengths", "nan_codes", "one_dimensional_codes"],
)
def test_bad_codes_raise_a_one_line_user_error(codes, factors, message):
    for metric in (
        lambda: mig(codes, factors),
        lambda: dci(codes, factors, codes, factors),
    ):
        with pytest.raises(UserError, match=message) as error:
            metric()
        assert "\n" not in str(error.value)


def test_mig_rejects_a_constant_factor_and_a_single_code():
    factors = np.stack([np.arange(10) % 3, np.zeros(10, np.int64)], axis=1)
    with pytest.raises(UserError, match="single value"):
        mig(np.random.default_rng(0).normal(size=(10, 2)), factors)
    with pytest.raises(UserError, match="at least 2 code"):
        mig(np.zeros((10, 1)), factors)


def test_sampling_scores_reject_a_representation_of_the_wrong_shape_or_a_plain_dataset(small):
    with pytest.raises(UserError, match="lacks factor_sizes"):
        beta_vae_score(lambda images: images, load_dataset("digits"), 0)
    with pytest.raises(UserError, match="representation_fn returned shape"):
        beta_vae_score(lambda images: np.zeros(len(images)), small, 0, num_train=4, num_eval=4)
    with pytest.raises(UserError, match="NaN"):
        factor_vae_score(
            lambda images: np.full((len(images), 2), np.nan), small, 0, num_variance_estimate=8
        )
