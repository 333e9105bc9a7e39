"""The quickstart notebook runs top to bottom and its probe beats the random encoder."""

import json
import os

import nbformat
from nbclient import NotebookClient

from tests.configs import REPO, TEST_XLA_FLAGS


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_WORKDIR", str(tmp_path / "quickstart"))
    monkeypatch.setenv("XLA_FLAGS", TEST_XLA_FLAGS)
    # The notebook's own default is 200 steps and a readout of all 4,000 training digits with
    # the pixel baseline; this quick check measured kNN 0.914 trained vs 0.863 random init.
    monkeypatch.setenv("QUICKSTART_STEPS", "25")
    monkeypatch.setenv(
        "QUICKSTART_OVERRIDES", "readout.baseline=False;readout.max_train_examples=1000"
    )
    notebook = nbformat.read(os.path.join(REPO, "notebooks", "quickstart.ipynb"), as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(
        o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs
    )
    with open(tmp_path / "quickstart" / "readout.json") as f:
        readout = json.load(f)
    scores = readout["representations"]["encoder"]["labels"]
    assert scores["knn"]["trained"] > scores["knn"]["random_init"]
