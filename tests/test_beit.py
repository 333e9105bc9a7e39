"""BEiT-style masked image modelling (notes 001 §3.3.1 (6)): blockwise masks of about 40% of
the patches made of rectangles of BEiT's shapes; the loss is the cross-entropy over the
codebook on the hidden positions only (against a NumPy reference); the hidden patches'
pixels never reach the encoder; the VQ tokenizer loaded with init_from gets no gradient and
does not move; learning on digits beats the same ViT at random init."""

import collections
import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssl_jax.checkpoint import Checkpoints
from ssl_jax.config import load_config
from ssl_jax.data import load_dataset
from ssl_jax.data.spec import ArraySpec, decoded_spec
from ssl_jax.errors import UserError
from ssl_jax.masks import BLOCK_ASPECT, blockwise_masks, unpatchify
from ssl_jax.models import build_encoder
from ssl_jax.objectives import make_objective
from ssl_jax.objectives.beit import (
    TOKENIZER_MODULES,
    encode_masked,
    masked_token_cross_entropy,
    tokenizer_codes,
    tokenizer_init_from,
)
from ssl_jax.objectives.mae import random_crops_and_flips
from ssl_jax.train import train
from tests.configs import REPO
from tests.learning import learning_config

# 8×8 digits: a ViT on 2×2 patches (a 4×4 grid) and a one-stage CNN tokenizer (8×8 → 4×4).
TINY_VIT = dict(
    name="vit_tiny", patch_size=2, dim=64, depth=2, num_heads=4, pool="mean", position="sincos"
)
TOKENIZER = dict(
    model=dict(name="small_cnn", widths=(16,), convs_per_stage=1, pool="avg"),
    num_codes=32,
    code_dim=8,
)
GRID, NUM_PATCHES, STEPS = (4, 4), 16, 300


# --- the masks ---------------------------------------------------------------------------


def hidden_counts(grid, draws, key=0, **kwargs):
    masks = np.asarray(blockwise_masks(jax.random.key(key), draws, grid, **kwargs))
    return masks.reshape(draws, *grid)


@pytest.mark.parametrize("grid", [(4, 4), (7, 7), (8, 8)])
def test_blockwise_masks_hide_the_target_fraction(grid):
    """Over 2,000 draws: never more than T = round(0.4·N) patches, T in nearly every mask, so
    the masked fraction is 0.4 up to the rounding of T."""
    n = grid[0] * grid[1]
    target = round(0.4 * n)
    counts = hidden_counts(grid, 2000).sum(axis=(1, 2))
    assert counts.max() <= target
    assert np.mean(counts == target) > 0.99
    assert abs(counts.mean() / n - 0.4) <= 0.5 / n + 0.005


def frequencies(items) -> dict:
    counts = collections.Counter(items)
    total = sum(counts.values())
    return {item: count / total for item, count in counts.items()}


def numpy_first_block_shapes(grid, target, min_patches, draws, seed=0):
    """BEiT's rule for one rectangle, in NumPy: area s ~ U[min, T], aspect r log-uniform in
    [0.3, 1/0.3], h = round(√(s r)), w = round(√(s / r)); kept if it fits (h < gh, w < gw)
    and hides at most T patches. Returns {(h, w): frequency} and the rejected fraction."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(min_patches, target, draws)
    r = np.exp(rng.uniform(math.log(BLOCK_ASPECT[0]), math.log(BLOCK_ASPECT[1]), draws))
    h = np.maximum(np.round(np.sqrt(s * r)), 1).astype(int)
    w = np.maximum(np.round(np.sqrt(s / r)), 1).astype(int)
    kept = (h < grid[0]) & (w < grid[1]) & (h * w <= target)
    return frequencies(zip(h[kept].tolist(), w[kept].tolist(), strict=True)), 1 - kept.mean()


def test_each_block_is_a_rectangle_of_beits_sizes_and_aspect_ratios():
    """One proposal per mask (``max_tries=1``) shows the blocks themselves: each hidden set is
    a full rectangle (its bounding box), and over 4,000 draws on the 7×7 grid their (h, w)
    follow BEiT's rule (NumPy reference above): area at least ``min_patches`` and aspect in
    [0.3, 1/0.3] before rounding to whole patches."""
    grid, target, draws = (7, 7), 20, 4000
    masks = hidden_counts(grid, draws, key=1, max_tries=1)
    shapes, empty = [], 0
    for m in masks:
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if not rows.size:
            empty += 1
            continue
        box = m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert box.all()  # a filled rectangle
        shapes.append(box.shape)
    reference, rejected = numpy_first_block_shapes(grid, target, 4, 400_000)
    observed = frequencies(shapes)
    assert set(observed) <= set(reference)  # no shape the rule cannot draw
    distance = 0.5 * sum(abs(observed.get(s, 0) - reference[s]) for s in reference)
    # Total variation. Sampling noise alone (4,000 draws against the reference, NumPy): 0.031
    # on average, 0.043 at most in 50 repeats; an aspect uniform rather than log-uniform gives
    # 0.26, areas from 1 rather than 4 give 0.17.
    assert distance < 0.08, distance
    assert abs(empty / draws - rejected) < 0.02  # too large a rectangle is rejected, not cut
    areas = np.array([h * w for h, w in shapes])
    aspects = np.array([h / w for h, w in shapes])
    assert areas.min() >= 3  # s ≥ 4 rounds to no fewer than 3 patches (e.g. 1 × 3)
    inside = (areas >= 4) & (aspects >= BLOCK_ASPECT[0]) & (aspects <= BLOCK_ASPECT[1])
    assert inside.mean() > 0.9  # the rest are roundings, e.g. s = 6.5, r = 0.3 → 1 × 5


def covered_by_blocks(mask, min_area):
    """Which hidden cells of a [gh, gw] mask lie in a fully hidden rectangle of ≥ min_area."""
    gh, gw = mask.shape
    covered = np.zeros_like(mask)
    for h in range(1, gh + 1):
        for w in range(1, gw + 1):
            if h * w < min_area:
                continue
            for top in range(gh - h + 1):
                for left in range(gw - w + 1):
                    if mask[top : top + h, left : left + w].all():
                        covered[top : top + h, left : left + w] = True
    return covered


def test_whole_masks_are_made_of_blocks_unlike_random_masks():
    """Over 300 draws on 7×7, almost every hidden patch lies in a fully hidden rectangle of at
    least 4 patches (only the last, small blocks that top up to T do not); a random mask of
    the same size has few such patches."""
    masks = hidden_counts((7, 7), 300, key=2)
    rng = np.random.default_rng(0)
    scattered = np.zeros_like(masks)
    for m in scattered.reshape(300, -1):
        m[rng.permutation(49)[:20]] = True

    def fraction(ms):
        return np.mean([covered_by_blocks(m, 4)[m].mean() for m in ms])

    blocks, random = fraction(masks), fraction(scattered)
    assert blocks > 0.9 and random < 0.5, (blocks, random)


# --- the loss ----------------------------------------------------------------------------


def numpy_cross_entropy_on_hidden(logits, codes, mask):
    """−log softmax(ℓ_bi)[t_bi] averaged over the hidden (b, i), in float64."""
    logits = np.asarray(logits, np.float64)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, np.asarray(codes)[..., None], -1)[..., 0]
    mask = np.asarray(mask, bool)
    return nll[mask].mean()


def test_masked_token_cross_entropy_matches_numpy_and_ignores_visible_positions():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 16, 10)).astype(np.float32) * 3
    codes = rng.integers(0, 10, size=(3, 16))
    mask = rng.random((3, 16)) < 0.4
    value = masked_token_cross_entropy(jnp.asarray(logits), jnp.asarray(codes), jnp.asarray(mask))
    np.testing.assert_allclose(value, numpy_cross_entropy_on_hidden(logits, codes, mask), rtol=1e-6)
    visible, hidden = np.argwhere(~mask)[0], np.argwhere(mask)[0]

    def loss_with(logits=logits, codes=codes):
        return float(masked_token_cross_entropy(*map(jnp.asarray, (logits, codes, mask))))

    for (b, i), changes in ((visible, False), (hidden, True)):
        other_logits, other_codes = logits.copy(), codes.copy()
        other_logits[b, i] += 5 * rng.normal(size=10).astype(np.float32)
        other_codes[b, i] = (codes[b, i] + 1) % 10
        assert (loss_with(logits=other_logits) != float(value)) == changes
        assert (loss_with(codes=other_codes) != float(value)) == changes


# --- a tokenizer, BEiT on it, read out -----------------------------------------------------


def tokenizer_config():
    """A tiny VQ-VAE on digits whose 4×4 code grid is the ViT's patch grid; the gradient-trained
    codebook, a parameter that init_from can load."""
    config = learning_config(
        "vq_vae",
        num_steps=100,
        batch_size=64,
        model=dict(widths=TOKENIZER["model"]["widths"], pool="avg"),
        num_codes=TOKENIZER["num_codes"],
        code_dim=TOKENIZER["code_dim"],
        decoder_width=16,
        ema=False,
        restart_dead_codes=False,
    )
    config.optim.lr = 3e-3
    config.readout.enabled = False
    return config


def beit_config(tokenizer_workdir, num_steps=STEPS, seed=0):
    config = learning_config(
        "beit",
        num_steps=num_steps,
        batch_size=64,
        model=TINY_VIT,
        tokenizer=TOKENIZER,
        crop_scale=(0.5, 1.0),
        flip=False,
    )
    config.seed = seed
    config.init_from = ml_collections.ConfigDict(
        dict(workdir=str(tokenizer_workdir), step=0, modules=tokenizer_init_from(), frozen=True)
    )
    config.optim.update(lr=2e-3, b2=0.999, weight_decay=0.05, warmup_steps=15)
    return config


def final_state(workdir, step):
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=3, read_only=True)
    try:
        return checkpoints.restore_raw(step)
    finally:
        checkpoints.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tokenizer (100 VQ-VAE steps), then 300 BEiT steps on it with the readout."""
    root = tmp_path_factory.mktemp("beit")
    train(tokenizer_config(), str(root / "tokenizer"))
    config = beit_config(root / "tokenizer")
    scores = train(config, str(root / "beit"))["representations"]["encoder"]["labels"]
    return dict(
        config=config,
        scores=scores,
        tokenizer=final_state(root / "tokenizer", 100),
        beit=final_state(root / "beit", STEPS),
    )


# Measured at seeds 0 and 1 (of the tokenizer and of BEiT; 300 steps, batch 64, AdamW lr 2e-3,
# β₂ = 0.999, weight decay 0.05): kNN 0.700 / 0.730 against 0.657 / 0.593 at random init (gaps
# 0.043 and 0.137); the linear probe stays below random init's (0.913 / 0.897 against
# 0.927 / 0.907), as MAE's does at this budget.
def test_beit_beats_random_init_on_knn_on_digits(runs):
    scores = runs["scores"]
    assert scores["knn"]["trained"] > scores["knn"]["random_init"] + 0.02, scores


def test_the_tokenizer_is_the_vq_vae_run_and_does_not_move(runs):
    """After 300 BEiT steps its tokenizer modules still equal the VQ-VAE's final parameters
    and batch statistics exactly, and no optimizer state was made for them."""
    tokenizer, beit = runs["tokenizer"], runs["beit"]
    for mine, theirs in TOKENIZER_MODULES.items():
        jax.tree.map(
            np.testing.assert_array_equal, beit["params"][mine], tokenizer["params"][theirs]
        )
    jax.tree.map(
        np.testing.assert_array_equal,
        beit["batch_stats"]["tokenizer_encoder"],
        tokenizer["batch_stats"]["encoder"],
    )
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(beit)]
    assert any("opt_state" in p and "'encoder'" in p for p in paths)
    assert not any("opt_state" in p and "tokenizer" in p for p in paths)


@pytest.fixture(scope="module")
def at_final_state(runs):
    """At the trained state, on 64 held-out digits: the objective's loss, its gradient, the
    images as the loss augments them, the mask its key draws, and the encoder's final tokens
    of those images and of the same with their hidden patches replaced by noise. One program."""
    config = runs["config"]
    dataset = load_dataset("digits")
    objective = make_objective(config, decoded_spec(dataset.spec))
    encoder = objective.representations["encoder"].module
    images = jnp.asarray(dataset.decoded("test", "images")[:64])
    params = jax.tree.map(jnp.asarray, runs["beit"]["params"])
    batch_stats = jax.tree.map(jnp.asarray, runs["beit"]["batch_stats"])
    noise = jnp.asarray(np.random.default_rng(0).random(images.shape, dtype=np.float32))
    key = jax.random.key(7)

    @jax.jit
    def evaluate(params, images, key):
        def loss(p):
            batch = {"images": images}
            return objective.loss(p, batch_stats, None, batch, key, 0, group="model")

        (value, _), grads = jax.value_and_grad(loss, has_aux=True)(params)
        # As the loss does: the first half of the key crops, the second draws the mask.
        aug_key, mask_key = jax.random.split(key)
        seen = random_crops_and_flips(images, aug_key, config.objective.crop_scale, False)
        mask = blockwise_masks(mask_key, images.shape[0], GRID, mask_ratio=0.4)
        hidden_pixels = unpatchify(jnp.repeat(mask[..., None], 4, -1), 2, GRID)
        noised = jnp.where(hidden_pixels, noise, seen)
        embedding = params["mask_token"]["embedding"]
        tokens = jax.vmap(lambda x: encode_masked(encoder, params["encoder"], embedding, x, mask))(
            jnp.stack([seen, noised])
        )
        return value, grads, seen, mask, tokens

    value, grads, seen, mask, tokens = jax.device_get(evaluate(params, images, key))
    return dict(
        params=params,
        batch_stats=batch_stats,
        value=value,
        grads=grads,
        seen=seen,
        mask=mask,
        tokens=tokens,
    )


def test_loss_is_the_cross_entropy_of_the_tokenizers_codes_on_hidden_patches(at_final_state):
    """The objective's loss = the NumPy formula on the head's logits of the encoded tokens and
    the codes the tokenizer modules give the same (augmented) images."""
    s = at_final_state
    tokenizer_encoder = build_encoder(ml_collections.ConfigDict(TOKENIZER["model"]))
    pre_quantizer = nn.Dense(TOKENIZER["code_dim"])
    codes = tokenizer_codes(
        tokenizer_encoder, pre_quantizer, s["params"], s["batch_stats"], s["seen"], "small_cnn"
    )
    head = nn.Dense(TOKENIZER["num_codes"])
    logits = head.apply({"params": s["params"]["head"]}, s["tokens"][0])
    reference = numpy_cross_entropy_on_hidden(logits, codes, s["mask"])
    np.testing.assert_allclose(s["value"], reference, rtol=1e-5)
    assert len(np.unique(np.asarray(codes))) > 4  # the trained tokenizer's codes vary


def test_the_encoder_never_sees_the_hidden_patches(at_final_state):
    tokens, noised = at_final_state["tokens"]
    np.testing.assert_array_equal(noised, tokens)


def test_the_tokenizer_gets_no_gradient(at_final_state):
    grads = at_final_state["grads"]
    for module in TOKENIZER_MODULES:
        assert all(np.all(g == 0) for g in jax.tree.leaves(grads[module])), module
    for module in ("encoder", "mask_token", "head"):
        assert any(np.any(g != 0) for g in jax.tree.leaves(grads[module])), module


# --- configs and errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "grid"), [("beit_mnist", (28, 28, 1), 7), ("beit_cifar10", (32, 32, 3), 8)]
)
def test_configs_give_a_code_grid_equal_to_the_patch_grid(name, shape, grid):
    """Traced abstractly: nothing is compiled."""
    config = load_config(os.path.join(REPO, "experiments", f"{name}.py"))
    assert config.init_from.modules == tokenizer_init_from() and config.init_from.frozen
    config.init_from.workdir = "runs/vq_vae_tokenizer"
    objective = make_objective(config, {"images": ArraySpec(shape, "float32", "images")})
    images = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
    params, batch_stats, _ = jax.eval_shape(objective.init, jax.random.key(0), {"images": images})
    assert set(params) == {"encoder", "mask_token", "head", *TOKENIZER_MODULES}
    assert objective.param_groups == {"model": ("encoder", "mask_token", "head")}
    encoder = objective.representations["encoder"].module
    assert shape[0] // encoder.patch_size == grid
    tokenizer = config.objective.tokenizer
    codes = jax.eval_shape(
        lambda p, s, x: tokenizer_codes(
            build_encoder(tokenizer.model), nn.Dense(tokenizer.code_dim), p, s, x, "small_cnn"
        ),
        params,
        batch_stats,
        images,
    )
    assert codes.shape == (2, grid * grid)
    assert params["tokenizer_codebook"]["embedding"].shape == (
        tokenizer.num_codes,
        tokenizer.code_dim,
    )


def test_bad_settings_are_one_line_errors():
    spec = {"images": ArraySpec((8, 8, 1), "float32", "images")}
    config = beit_config("runs/tokenizer")
    config.init_from.workdir = ""
    with pytest.raises(UserError, match="train a vq_vae run first"):
        make_objective(config, spec)
    for field, value, message in (
        ("mask_ratio", 1.0, "hides 16 of 16 patches"),
        ("min_mask_patches", 0, "min_mask_patches must be"),
        ("crop_scale", (0.5, 2.0), "crop_scale"),
    ):
        config = beit_config("runs/tokenizer")
        config.objective[field] = value
        with pytest.raises(UserError, match=message):
            make_objective(config, spec)
    config = beit_config("runs/tokenizer")
    config.objective.tokenizer.model.widths = (16, 32)
    with pytest.raises(UserError, match="a 2×2 grid of codes but the ViT's patch_size 2 a 4×4"):
        make_objective(config, spec)
    config = beit_config("runs/tokenizer")
    config.model = ml_collections.ConfigDict(TOKENIZER["model"])
    with pytest.raises(UserError, match="needs a ViT encoder"):
        make_objective(config, spec)
