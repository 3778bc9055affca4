"""Faults and reproducibility on real runs: same seed twice, a SIGKILLed run resumed, a diverging run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.cli import ROOT, last_error_line, run_train
from tests.conftest import SHARED_OVERRIDES, requires_shared

pytestmark = [pytest.mark.integration, requires_shared]
#: A short, fully specified run: 4 epochs of MobileNetV2-lite (~2 s each in batches of 16), no early stop.
RUN = ("model=mobilenetv2", "trainer.max_epochs=4", "data.batch_size=16", "seed=7", *SHARED_OVERRIDES)


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    metrics = []
    for name in ("a", "b"):
        result = run_train(*RUN, f"hydra.run.dir={tmp_path / name}")
        assert result.returncode == 0, result.stderr[-2000:]
        metrics.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert metrics[0] == metrics[1]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    reference = run_train(*RUN, f"hydra.run.dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference.stderr[-2000:]

    run = tmp_path / "killed"
    last = run / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        [sys.executable, "train.py", *RUN, f"hydra.run.dir={run}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no last.ckpt"
        time.sleep(0.05)
    time.sleep(0.7)  # the first epoch's checkpoint is written (atomically): kill during the second epoch
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "killed before the end"
    epoch = torch.load(last, weights_only=True)["epoch"]
    assert epoch < 3 and not (run / "metrics.json").exists()

    resumed = run_train(*RUN, f"ckpt_path={last}", f"hydra.run.dir={run}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    assert {k: v for k, v in got.items() if k.startswith(("test/", "realworld/", "val/"))} == pytest.approx(
        {k: v for k, v in expected.items() if k.startswith(("test/", "realworld/", "val/"))}, abs=1e-6
    )
    assert torch.load(last, weights_only=True)["epoch"] == 3, "the run folder holds the finished run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        p.name for p in (tmp_path / "reference" / "checkpoints").iterdir()
    )


def test_a_diverging_run_stops_with_one_line_naming_the_step(tmp_path: Path) -> None:
    result = run_train(
        "model=mobilenetv2",
        "trainer.max_epochs=2",
        "model.optimizer.lr=1e30",
        *SHARED_OVERRIDES,
        f"hydra.run.dir={tmp_path}",
    )
    line = last_error_line(result)
    assert line.startswith("error: train/loss is nan at global step ") and "training diverged" in line
    assert not (tmp_path / "metrics.json").exists()
    assert "run failed: error: train/loss is nan" in (tmp_path / "train.log").read_text(), "the log says so"


def test_ctrl_c_stops_training_and_still_tests_the_best_checkpoint(tmp_path: Path) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        [sys.executable, "train.py", *RUN, "trainer.max_epochs=40", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no last.ckpt"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # Ctrl-C during the second epoch
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] < 39 and 0 <= metrics["test/acc"] <= 1, "stopped early, tested"
    log = (tmp_path / "train.log").read_text()
    assert "interrupted by Ctrl-C at epoch" in log and f"ckpt_path={last}" in log
    assert "run interrupted by Ctrl-C" in log
