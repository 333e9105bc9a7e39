"""The cheap learning check every objective of the suite runs: a short pretraining on real
digits, read out beside the same encoder at its random initialisation.

Longer measured runs of each method, on the MNIST subset, are in the docs (docs/multiview.md);
this is the same claim at a budget the test suite affords: sklearn's 8×8 digits (1,497
training, 300 held-out images), a two-stage CNN read out after global average pooling. Pooled
features of a random CNN are weak (kNN about 0.85-0.91 here), unlike its flattened maps, a
random projection of the pixels that a probe already reads almost as well as any learned
feature; so a gap over random init measures what the objective taught.
"""

import ml_collections

from ssl_jax import augment
from ssl_jax.config import base_config, objective_defaults
from ssl_jax.train import train


def learning_config(
    objective: str,
    *,
    num_steps: int,
    dataset="digits",
    batch_size=128,
    model=None,
    **objective_fields,
) -> ml_collections.ConfigDict:
    c = base_config()
    c.dataset = dataset
    c.batch_size = batch_size
    c.num_steps = num_steps
    c.log_every = num_steps
    c.checkpoint_every = num_steps
    c.num_devices = 1
    model = model or dict(widths=(16, 32), pool="avg")
    if model.get("name", "small_cnn") == "small_cnn":
        model = dict(name="small_cnn", convs_per_stage=1, **model)
    c.model = ml_collections.ConfigDict(model)
    fields = {**objective_defaults(objective), **objective_fields}
    c.objective = ml_collections.ConfigDict(dict(name=objective, **fields))
    c.aug = augment.default_config()
    c.aug.global_scale = (0.5, 1.0)
    c.aug.flip_prob = 0.0
    c.aug.blur_prob = 0.0
    c.aug.grayscale_prob = 0.0
    c.optim.lr = 2e-3
    c.optim.warmup_steps = 10
    c.readout.l2_grid = tuple(10.0**-e for e in range(5))
    c.readout.baseline = False
    return c


def pretrain(config, workdir, representation: str = "encoder") -> dict:
    """Trains ``config``; returns ``{protocol: (trained, random_init)}`` held-out accuracies
    of ``representation``."""
    scores = train(config, str(workdir))["representations"][representation]["labels"]
    return {p: (scores[p]["trained"], scores[p]["random_init"]) for p in ("knn", "linear")}
