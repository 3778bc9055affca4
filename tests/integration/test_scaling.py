"""Scale-out with existing engines: Lightning DDP on 2 CPU processes, Hydra's joblib and submitit launchers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from facemask.data.folder import load_image_folder
from facemask.evaluation.calibration import operating_point
from facemask.evaluation.tensorboard import read_scalars
from facemask.module import load_checkpoint
from tests.cli import run_train
from tests.conftest import MASK28, SHARED_OVERRIDES, requires_shared

pytestmark = [pytest.mark.integration, requires_shared]


def test_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    result = run_train(
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=2",
        *SHARED_OVERRIDES,
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("] - test       acc ") == 1, "the summary is logged once, by rank zero"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    logged = read_scalars(tmp_path / "tensorboard")["test/acc"]
    assert len(logged) == 1 and logged[0][1] == pytest.approx(metrics["test/acc"]), "one TensorBoard value"

    # every Test image counted once across the two processes: the same scores as one process computes
    best = next(p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith("epoch_"))
    model = load_checkpoint(best)
    test = load_image_folder(MASK28 / "Test")
    with torch.no_grad():
        probs = model.predict_proba(test.floats())
    expected = operating_point(probs, test.labels, float(model.threshold))
    assert metrics["test/acc"] == pytest.approx(expected["acc"], abs=1e-6)
    assert metrics["test/recall"] == pytest.approx(expected["recall"], abs=1e-6)


def test_joblib_launcher_runs_two_jobs_in_parallel(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m",
        "hydra/launcher=local",
        "seed=0,1",
        "trainer.max_epochs=1",
        "model=mobilenetv2",
        *SHARED_OVERRIDES,
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert all((sweep / job / "metrics.json").is_file() for job in ("0", "1"))
    rows = (sweep / "summary.csv").read_text().splitlines()
    assert len(rows) == 3 and "seed=1" in rows[2]


def test_slurm_launcher_config_composes_and_validates(train_cfg) -> None:
    from hydra import compose, initialize_config_dir

    from facemask.runs import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train.yaml",
            ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 1, 1)
    slurm = instantiate(launcher)  # the plugin's own validation of its parameters; nothing is submitted
    assert slurm.params["partition"] == "gpu" and slurm.params["timeout_min"] == 60
