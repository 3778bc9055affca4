"""Cross-validation on ../shared/data/mask28: every fold trained, held-out scores summarised."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from facemask.crossval import crossval
from facemask.evaluation.tensorboard import read_scalars
from tests.conftest import MASK28, SHARED_DATA, requires_shared

pytestmark = [pytest.mark.integration, requires_shared]


def test_crossval_trains_each_fold_on_its_own_split(train_cfg) -> None:
    cfg = train_cfg(
        "model=vgg16",
        "folds=3",
        "trainer.max_epochs=3",
        f"data.root={MASK28}",
        f"paths.data_root={SHARED_DATA}",
        config="crossval.yaml",
    )
    rows = crossval(cfg)
    out = Path(cfg.paths.output_dir)

    assert [row["fold"] for row in rows] == [0, 1, 2, "mean ± std"]
    assert all(0.6 < row["crossval/acc"] <= 1 for row in rows[:3]), "well above chance on every fold"
    accs = [row["crossval/acc"] for row in rows[:3]]
    assert rows[3]["crossval/acc mean"] == pytest.approx(sum(accs) / 3)
    assert rows[3]["crossval/acc std"] > 0, "three different folds do not score the same"
    with open(out / "crossval.csv") as file:
        assert len(list(csv.DictReader(file))) == 4
    assert "| mean ± std |" in (out / "crossval.md").read_text()
    assert [step for step, _ in read_scalars(out / "tensorboard")["crossval/acc"]] == [0, 1, 2]
    for fold in range(3):
        assert (out / f"fold_{fold}" / "metrics.json").is_file()
    # 1315 Train images in 3 folds: each held-out fold is about a third
    assert sum(read_scalars(out / f"fold_{f}" / "tensorboard")["val/acc"] != [] for f in range(3)) == 3
