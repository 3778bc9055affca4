"""``facemask mine`` end to end on generated faces: the bare faces scored near or above the threshold are copied
with a CSV and a contact sheet, and training takes the folder back as WithoutMask."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

import facemask.vision.faces as faces
from facemask.cli import main
from facemask.inference.classifier import load_classifier
from facemask.inference.mine import SHEET_COLUMNS, TILE
from tests.synthetic import SquareFaces, crop_folder, make_image_folder


@pytest.fixture
def bare_crops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Eight bare-looking crops and four masked-looking ones in one folder: 'staff known to be bare' of whom a
    third wear something the model takes for a mask."""
    monkeypatch.setattr(faces, "CenterFace", SquareFaces)
    folder = tmp_path / "staff"
    crop_folder(tmp_path / "gen", found=4, missed=0)
    folder.mkdir()
    for i, path in enumerate(sorted((tmp_path / "gen").rglob("*.jpg"))):
        path.rename(folder / f"{path.parent.name}_{i}.jpg")
    crop_folder(tmp_path / "more", found=4, missed=0, classes=("",))
    for i, path in enumerate(sorted((tmp_path / "more").glob("*.jpg"))):
        path.rename(folder / f"extra_{i}.jpg")
    return folder


@pytest.mark.parametrize("kind", ["onnx", "ckpt"])
def test_mine_writes_the_hard_faces_and_training_takes_them_back(
    models: dict[str, Path],
    bare_crops: Path,
    tmp_path: Path,
    kind: str,
    capsys: pytest.CaptureFixture,
    train_cfg,
) -> None:
    out = tmp_path / "mined"
    assert main(["mine", str(models[kind]), str(bare_crops), "--output", str(out), "--near", "1"]) == 0
    printed = capsys.readouterr().out
    assert "12 bare faces scored (the detector found 12" in printed
    with (out / "mined.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12, "--near 1 takes every face"
    scores = [float(row["p_mask"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    threshold = load_classifier(models[kind]).threshold
    assert [row["called_mask"] == "1" for row in rows] == [s > threshold for s in scores]
    assert any(row["called_mask"] == "1" for row in rows), "the masked-looking faces are called masks"
    assert {row["copy"] for row in rows} == {p.name for p in (out / "faces").iterdir()}
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size == (SHEET_COLUMNS * TILE, 2 * (TILE + 14))
    assert np.asarray(sheet).std() > 10, "faces drawn on the sheet"

    data = make_image_folder(tmp_path / "data" / "Train", per_class=10).parent
    make_image_folder(data / "Test", per_class=3, seed=1)
    command = printed.split("train on them: python train.py ... ")[1].split()  # what mine says to run
    cfg = train_cfg(f"data.root={data}", f"paths.data_root={tmp_path}", *command)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert datamodule.train_sizes["hard_negatives"] == 2 * 12
    assert datamodule.sets["train"].labels[-24:].sum() == 0, "mined faces train as WithoutMask"


def test_mine_keeps_the_top_faces_above_the_threshold_only(
    models: dict[str, Path], bare_crops: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "top"
    assert (
        main(
            ["mine", str(models["onnx"]), str(bare_crops), "--output", str(out), "--near", "0", "--top", "2"]
        )
        == 0
    )
    with (out / "mined.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and all(row["called_mask"] == "1" for row in rows)


def test_mine_reports_bad_input_in_one_line(
    models: dict[str, Path], bare_crops: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["mine", str(models["onnx"]), str(tmp_path / "empty")]) == 1
    assert capsys.readouterr().err.strip() == f"error: no image files in {tmp_path / 'empty'}"
    (bare_crops / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "mined"
    assert main(["mine", str(models["onnx"]), str(bare_crops), "--output", str(out)]) == 1, (
        "a bad file says so"
    )
    printed = capsys.readouterr().out
    assert "unreadable: " in printed and "broken.jpg" in printed and (out / "mined.csv").is_file()
    assert main(["mine", str(models["onnx"]), str(bare_crops), "--near", "-1"]) == 1
    assert "error: --near -1.0: expected a score distance >= 0" in capsys.readouterr().err
