"""The sweep summary table from job folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from omegaconf import OmegaConf

from facemask.evaluation.summary import SweepSummary


def fake_job(sweep: Path, num: int, overrides: list[str], acc: float) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    (job / "metrics.json").write_text(json.dumps({"test/acc": acc, "val/acc": 0.9, "model/params": 1000}))


def test_summary_has_one_row_per_finished_job(tmp_path: Path, capsys) -> None:
    for num, (model, acc) in enumerate([("vgg16", 0.97), ("vgg19", 0.95)] * 5 + [("xception", 0.5)]):
        fake_job(tmp_path, num, [f"model={model}", f"seed={num}", "trainer.max_epochs=3"], acc)
    (tmp_path / "99").mkdir()  # a job that died before writing metrics.json
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))

    with open(tmp_path / "summary.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["job"] for row in rows] == [str(n) for n in range(11)]  # numeric, not text, order
    assert (
        rows[10]["overrides"] == "model=xception seed=10 trainer.max_epochs=3"
        and float(rows[10]["test/acc"]) == 0.5
    )
    markdown = (tmp_path / "summary.md").read_text()
    assert markdown.splitlines()[0] == "| job | overrides | test/acc | val/acc | model/params |"
    assert "| 1 | model=vgg19 seed=1 | 0.9500 | 0.9000 | 1000 |" in markdown, "shared overrides left out"
    assert markdown in capsys.readouterr().out

    with open(tmp_path / "summary_by_config.csv") as file:
        groups = {row["config"]: row for row in csv.DictReader(file)}
    assert set(groups) == {"model=vgg16", "model=vgg19", "model=xception"}
    assert groups["model=vgg16"]["n"] == "5" and float(groups["model=vgg16"]["test/acc mean"]) == 0.97
    assert float(groups["model=xception"]["test/acc std"]) == 0.0
    assert "| model=vgg19 | 5 | 0.9500 | 0.9000 | 1000 |" in markdown, "equal values shown as they are"
