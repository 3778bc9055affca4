"""MaskClassifier: normalisation, metrics per test set, NaN guard, rebuilding from a checkpoint alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from facemask.data.datamodule import MaskDataModule
from facemask.data.labelled import DatasetFolder
from facemask.evaluation.calibration import operating_point
from facemask.module import LossNotFinite, MaskClassifier
from tests.synthetic import ADAM, TINY_NET, fit, make_image_folder


def test_forward_normalises_inputs() -> None:
    model = MaskClassifier(nn.Sequential(nn.Flatten(), nn.Identity()), ADAM)
    out = model(torch.full((1, 1, 2, 1), 0.75))
    assert torch.allclose(out, torch.tensor([[0.5, 0.5]]))


def test_test_metrics_are_named_after_each_test_set(tiny_dataset: Path, tmp_path: Path) -> None:
    extra = make_image_folder(tmp_path / "street", per_class=4, seed=5)
    datamodule = MaskDataModule(
        root=str(tiny_dataset), batch_size=8, test_sets={"street": DatasetFolder(folder=str(extra))}
    )
    model = MaskClassifier(TINY_NET, ADAM)
    trainer = fit(model, datamodule, tmp_path)
    scores = {
        key: value
        for result in trainer.test(model, datamodule=datamodule, verbose=False)
        for key, value in result.items()
    }
    expected = {
        f"{prefix}/{m}"
        for prefix in ("test", "street")
        for m in ("loss", "acc", "precision", "recall", "f1", "auroc")
    }
    assert set(scores) == expected
    assert scores["test/acc"] > 0.9  # the toy classes are easy: the metrics see real predictions


def test_a_nan_loss_stops_training_naming_the_step(tiny_dataset: Path, tmp_path: Path) -> None:
    class NaNAfterTwo(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(784, 2)
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            out = self.linear(x.flatten(1))
            return out * float("nan") if self.calls > 2 else out

    datamodule = MaskDataModule(root=str(tiny_dataset), batch_size=8)
    with pytest.raises(LossNotFinite, match=r"train/loss is nan at global step 2: training diverged"):
        fit(MaskClassifier(NaNAfterTwo(), ADAM), datamodule, tmp_path, num_sanity_val_steps=0)


def test_a_checkpoint_alone_rebuilds_the_model(tiny_dataset: Path, tmp_path: Path) -> None:
    datamodule = MaskDataModule(root=str(tiny_dataset), batch_size=8)
    model = MaskClassifier(TINY_NET, ADAM)
    trainer = fit(model, datamodule, tmp_path)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = MaskClassifier.load_from_checkpoint(tmp_path / "model.ckpt").eval()
    images = datamodule.sets["test"].images.float() / 255
    assert torch.equal(loaded(images), model.eval()(images))


def test_the_operating_threshold_is_chosen_on_val_and_used_for_test(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    datamodule = MaskDataModule(root=str(tiny_dataset), batch_size=8, val_fraction=0.5)
    model = MaskClassifier(TINY_NET, ADAM, operating_point={"metric": "recall", "target": 1.0})
    trainer = fit(model, datamodule, tmp_path)
    val = datamodule.sets["val"]
    probs = model.predict_proba(val.images.float() / 255)
    assert operating_point(probs, val.labels, float(model.threshold))["recall"] == 1.0
    assert float(model.threshold) < probs[val.labels == 1].min(), "the lowest mask score must be above it"

    model.threshold.fill_(1.0)  # P > 1 never holds: every face is called WithoutMask
    scores = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    assert scores["test/recall"] == 0.0 and scores["test/acc"] == 0.5 and scores["test/auroc"] > 0.9


def test_flip_tta_averages_the_mirror_in_eval_mode_only() -> None:
    torch.manual_seed(0)
    model = MaskClassifier(TINY_NET, ADAM, flip_tta=True)
    images = torch.rand(3, 1, 28, 28)
    plain = model.net((images - 0.5) / 0.5)
    mirrored = model.net((images.flip(-1) - 0.5) / 0.5)
    assert torch.allclose(model.train()(images), plain)
    assert torch.allclose(model.eval()(images), (plain + mirrored) / 2)
    assert torch.allclose(model(images.flip(-1)), model(images), atol=1e-6), "symmetric by construction"
