"""``facemask.evaluate`` on a real (short) training run: every number real and consistent."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from facemask.evaluate import evaluate
from facemask.evaluation.tensorboard import read_scalars
from facemask.train import train
from tests.conftest import SHARED_OVERRIDES, requires_shared

pytestmark = [pytest.mark.integration, requires_shared]


def test_evaluate_a_checkpoint(train_cfg, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(train_cfg("model=vgg16", "trainer.max_epochs=5", *SHARED_OVERRIDES, output_dir=run))
    ckpt = run / "checkpoints" / "last.ckpt"
    out = tmp_path / "eval"
    metrics = evaluate(
        train_cfg(
            f"ckpt_path={ckpt}", "gradcam_images=8", *SHARED_OVERRIDES, config="eval.yaml", output_dir=out
        )
    )

    threshold = torch.load(ckpt, weights_only=True)["state_dict"]["threshold"].item()
    assert metrics["threshold"] == pytest.approx(threshold) and 0 < threshold < 1
    assert threshold != 0.5, "the operating point was chosen on the validation split"
    for split in ("val", "test", "realworld", "realworld_detected"):
        for key in ("acc", "precision", "recall", "f1", "fpr", "auroc", "ece", "acc@0.5"):
            assert 0 <= metrics[f"{split}/{key}"] <= 1, f"{split}/{key}"
    assert metrics["test/auroc"] > 0.85 and metrics["test/acc@0.5"] > 0.75
    mask_types = {key.split("/")[2] for key in metrics if key.startswith("realworld/acc/")} - {
        "dark",
        "light",
        "patterned",
    }
    assert {"cloth_black", "surgical_blue", "no-mask"} <= mask_types, "accuracy per mask type from labels.csv"
    assert sum(metrics[f"realworld/n/{kind}"] for kind in mask_types) == 269
    assert metrics["val/precision"] >= min(0.98, metrics["val/precision@0.5"]) - 1e-6

    with open(out / "robustness" / "robustness.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 1 + 16 * 5
    assert float(rows[0]["acc"]) == pytest.approx(metrics["test/acc"]), "clean = Test at the same threshold"
    worst = min(float(row["acc"]) for row in rows if row["corruption"] == "occlude_mouth")
    assert worst < float(rows[0]["acc"]), "hiding the mask region must cost accuracy"

    for occluder in ("hand", "scarf", "beard"):
        assert 0 <= metrics[f"test/false_mask_rate/{occluder}"] <= 1
    hard = list(csv.DictReader((out / "robustness" / "hard_negatives.csv").read_text().splitlines()))
    assert len(hard) == 16 and float(hard[0]["false_mask_rate"]) == pytest.approx(metrics["test/fpr"])

    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"gradcam.png", "test_pr.png", "test_reliability.png", "realworld_roc.png"} <= figures
    assert read_scalars(out / "tensorboard")["test/acc"][0][1] == pytest.approx(metrics["test/acc"])
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
    assert "| test |" in (out / "evaluation.md").read_text()
