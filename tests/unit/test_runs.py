"""The run folder helpers every app shares: where the configs are, the write check, the records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

from facemask.errors import FacemaskError
from facemask.evaluation.tensorboard import read_scalars
from facemask.runs import CONFIG_DIR, add_scalars, check_writable, find_config_dir, write_metrics, write_table


def test_the_config_dir_is_the_first_holding_train_yaml(tmp_path: Path) -> None:
    (tmp_path / "installed" / "conf").mkdir(parents=True)
    (tmp_path / "checkout" / "conf").mkdir(parents=True)
    (tmp_path / "checkout" / "conf" / "train.yaml").write_text("seed: 0\n")
    candidates = [tmp_path / "installed" / "conf", tmp_path / "checkout" / "conf"]
    assert find_config_dir(candidates) == tmp_path / "checkout" / "conf"
    with pytest.raises(FacemaskError, match=r"Hydra configs not found \(looked in: .*installed/conf"):
        find_config_dir(candidates[:1])
    assert (Path(CONFIG_DIR) / "train.yaml").is_file(), "this checkout's conf/"


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
