"""The objectives of docs/objectives.md, one per modality, train as written."""

import os
import re
import sys

import ml_collections
import pytest

from ssl_jax.train import train
from tests.configs import REPO, tiny_config

DOC = os.path.join(REPO, "docs", "objectives.md")


def python_blocks() -> dict[str, str]:
    """The doc's Python blocks that register an objective, by objective name."""
    with open(DOC) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.DOTALL)
    named = {}
    for block in blocks:
        match = re.search(r'@register_objective\("(\w+)"\)', block)
        if match:
            named[match.group(1)] = block
    return named


@pytest.mark.parametrize(
    ("name", "dataset", "objective_fields"),
    [
        ("tiny_denoiser", "digits", dict(noise=0.3)),
        ("bag_of_tokens", "lee", dict(dim=16)),
        ("halves", "speech", {}),
    ],
)
def test_the_documented_objective_trains(name, dataset, objective_fields, tmp_path, monkeypatch):
    blocks = python_blocks()
    assert set(blocks) == {"tiny_denoiser", "bag_of_tokens", "halves"}
    module = tmp_path / f"doc_{name}.py"
    module.write_text(blocks[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, f"doc_{name}", raising=False)
    config = tiny_config("simclr")
    config.dataset = dataset
    config.batch_size = 8
    config.num_steps = 2
    config.objective = ml_collections.ConfigDict(
        dict(name=name, module=f"doc_{name}", **objective_fields)
    )
    workdir = str(tmp_path / "run")
    train(config, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        assert '"loss"' in f.read()
