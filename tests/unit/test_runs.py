"""The run folder helpers every app shares: where the configs are, the write check, the records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

import facemask
from facemask.errors import FacemaskError
from facemask.evaluation.tensorboard import read_scalars
from facemask.runs import CONFIG_DIR, add_scalars, check_writable, write_metrics, write_table


def test_the_configs_ship_inside_the_package() -> None:
    """Every Hydra app composes the package's own conf/, and pyproject ships every file of it (a plain
    ``pip install .`` runs ``python -m facemask.train`` from any folder; .ci/run checks that install)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    package = Path(facemask.__file__).resolve().parent
    assert Path(CONFIG_DIR) == package / "conf" and (package / "conf" / "train.yaml").is_file()
    pyproject = tomllib.loads((package.parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["facemask"]
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    configs = {path for path in (package / "conf").rglob("*") if path.is_file()}
    assert configs and configs <= shipped, sorted(configs - shipped)[:3]


def test_records_land_in_the_run_folder_and_tensorboard(tmp_path: Path) -> None:
    check_writable(tmp_path / "run")
    write_metrics(tmp_path / "run", {"val/acc": 0.5, "epochs": 3})
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == {"epochs": 3, "val/acc": 0.5}
    with SummaryWriter(tmp_path / "run" / "tb") as writer:
        add_scalars(writer, {"val/acc": 0.5, "ckpt_path": "x", "nan": float("nan")}, step=2)
        write_table(tmp_path / "run", "summary", "| a |\n", writer)
    assert read_scalars(tmp_path / "run" / "tb") == {"val/acc": [(2, 0.5)]}
    assert (tmp_path / "run" / "summary.md").read_text() == "| a |\n"


def test_an_unwritable_run_folder_stops_before_training(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(FacemaskError, match="run folder is not writable"):
        check_writable(tmp_path / "file" / "run")
