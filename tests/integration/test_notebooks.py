"""The notebooks run headless end to end on real folders, and are stored in git without outputs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from facemask.evaluate import evaluate
from facemask.train import train
from tests.conftest import MASK28, ROOT, SHARED_DATA, requires_shared

pytestmark = pytest.mark.integration

NOTEBOOKS = ROOT / "notebooks"
NAMES = ("explore_dataset", "inspect_run")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """These tensors are tiny: one thread is fastest, and many times faster than two beside other busy jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the notebook kernels, which inherit the environment
    yield
    torch.set_num_threads(threads)


def execute(name: str) -> nbformat.NotebookNode:
    """Run every cell in a fresh ``python3`` kernel started in notebooks/, as Jupyter would; raises on an error.

    The kernel inherits this process's environment, so set FACEMASK_* variables before calling.
    """
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def printed(notebook: nbformat.NotebookNode) -> str:
    """Everything the cells printed, then every Markdown table or text they displayed."""
    streams = [o["text"] for o in outputs(notebook) if o["output_type"] == "stream"]
    shown = [o["data"]["text/markdown"] for o in outputs(notebook) if "text/markdown" in o.get("data", {})]
    return "\n".join(streams + shown)


def images(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for output in outputs(notebook))


@requires_shared
def test_explore_dataset_counts_near_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEMASK_DATA", str(MASK28))
    notebook = execute("explore_dataset")
    text = printed(notebook)

    assert f"dataset:    {MASK28.resolve()}" in text
    test_images = sum(1 for p in (MASK28 / "Test").rglob("*.png"))
    for view in ("whole face", "upper face"):
        found = re.search(
            rf"Test images with a near-duplicate in Train \({view}[^)]*\): (\d+) of (\d+)", text
        )
        assert found, f"no {view} near-duplicate count printed"
        assert int(found[2]) == test_images and 0 <= int(found[1]) <= test_images
    assert re.search(r"validation images .* near-duplicate in the training part: \d+ of \d+", text)
    assert "| Train |" in text and "| Test |" in text, "counts table"
    assert images(notebook) >= 7, "bar chart, sample grid, mean faces, histograms, distances, two pair sheets"


@requires_shared
def test_inspect_run_shows_a_run_and_its_evaluation(
    train_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short real run (2 epochs of 4 batches) and its full evaluation: the folders the notebook reads.
    data = (f"data.root={MASK28}", f"paths.data_root={SHARED_DATA}")
    train_run = train_cfg(
        "model=mobilenetv2", "trainer.max_epochs=2", "+trainer.limit_train_batches=4", *data
    )
    train(train_run)
    run, evaluation = Path(train_run.paths.output_dir), tmp_path / "eval"
    evaluate(
        train_cfg(
            f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            "robustness=true",
            "gradcam_images=8",
            *data,
            config="eval.yaml",
            output_dir=evaluation,
        )
    )

    monkeypatch.setenv("FACEMASK_RUN_DIR", str(run))
    monkeypatch.setenv("FACEMASK_EVAL_DIR", str(evaluation))
    notebook = execute("inspect_run")
    text = printed(notebook)

    assert f"training run: {run.resolve()}" in text and f"evaluation:   {evaluation.resolve()}" in text
    assert "another run's checkpoint" not in text
    assert "logged scalars:" in text and "val/loss" in text
    assert re.search(r"^\| test \| [01]\.\d{4} \|", text, re.MULTILINE), "metrics.json as a table"
    assert (evaluation / "evaluation.md").read_text().splitlines()[0] in text
    assert "severity 5" in text and "hardest corruptions:" in text, "robustness table"
    assert "skipped" not in text
    # curves, a confusion matrix + ROC sheet per test set (test, realworld), PR + reliability, robustness, Grad-CAM
    test_sets = len(list((run / "figures").glob("*_confusion_matrix.png")))
    assert test_sets >= 1 and images(notebook) == 4 + test_sets


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_stored_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs left in\n{cell.source}"
