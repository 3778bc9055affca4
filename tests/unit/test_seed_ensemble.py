"""scripts/seed_ensemble.py: each model and their mean on a config's sets, the mean at the pool's threshold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_each_model_and_their_mean_are_scored_on_the_configs_sets(
    models: dict[str, Path], tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "seed_ensemble.py"),
            str(models["onnx"]),
            str(models["ckpt"]),
            "--config",
            f"data.root={models['data']}",
            f"paths.data_root={tmp_path}",  # no realworld, no mask-rate sets, no Test photos: empty cells
            f"paths.log_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    header, _, *rows = result.stdout.splitlines()
    assert header.startswith("| model | threshold | val acc | test acc |")
    cells = [row.strip("|").split("|") for row in rows]
    assert [row[0].strip() for row in cells][-1] == "mean" and len(cells) == 3, "two models and their mean"
    for row in cells:
        assert 0 <= float(row[2]) <= 1 and 0 <= float(row[3]) <= 1, "val and test accuracy"
        assert row[-1].strip() == "", "no bare_val set in this data root: an empty cell"
