"""The crop margin travels inside the model: a model trained with another margin is cut with it by predict,
detect, serve and calibrate without any flag, and --margin overrides it with a warning."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi import UploadFile
from PIL import Image

import facemask.vision.faces as faces
from facemask import cli
from facemask.inference.classifier import load_classifier
from facemask.inference.export import export_onnx
from facemask.vision.crops import DEFAULT_MARGIN, FaceCropper, crop_box
from facemask.vision.faces import Face
from tests.synthetic import face, tiny_checkpoint

MARGIN = 0.1  # not the default: a model trained on tight crops
BOX = (40.0, 30.0, 120.0, 130.0)


class OneFace:
    """A stand-in for CenterFace (same constructor): one face at BOX in every frame."""

    def __init__(self, input_width: int = 320, score_threshold: float = 0.5) -> None:
        pass

    def __call__(self, frame: np.ndarray) -> list[Face]:
        return [Face(BOX, 0.99)]


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tight")
    checkpoint = tiny_checkpoint(root, margin=MARGIN)
    photo = root / "photo.png"
    rng = np.random.default_rng(3)
    frame = cv2.resize(face(True, rng), (200, 180)) + rng.integers(0, 40, (180, 200), dtype=np.uint8)
    Image.fromarray(frame).convert("RGB").save(photo)
    return {"ckpt": checkpoint, "onnx": export_onnx(checkpoint, root / "tight.onnx"), "photo": photo}


@pytest.fixture(autouse=True)
def stand_in_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faces, "CenterFace", OneFace)


def p_mask_at(model: Path, photo: Path, margin: float) -> float:
    frame = np.asarray(Image.open(photo).convert("RGB"))[:, :, ::-1]
    crops = FaceCropper(OneFace(), margin)(np.ascontiguousarray(frame))[1]
    return float(load_classifier(model).predict_proba(crops)[0])


@pytest.mark.parametrize("kind", ["ckpt", "onnx"])
def test_the_model_carries_its_margin(tight: dict[str, Path], kind: str) -> None:
    assert load_classifier(tight[kind]).margin == MARGIN


@pytest.mark.parametrize("kind", ["ckpt", "onnx"])
def test_predict_cuts_with_the_models_margin(
    tight: dict[str, Path], kind: str, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(["predict", str(tight[kind]), str(tight["photo"]), "--detect", "--format", "json"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out)[0]
    assert (
        row["crop"]
        == list(crop_box(BOX, (180, 200), MARGIN))
        != list(crop_box(BOX, (180, 200), DEFAULT_MARGIN))
    )
    assert row["p_mask"] == pytest.approx(p_mask_at(tight[kind], tight["photo"], MARGIN), abs=1e-6)
    assert "warning" not in captured.err


def test_detect_cuts_with_the_models_margin(tight: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    assert cli.main(["detect", str(tight["onnx"]), "--source", str(tight["photo"]), "--log", str(log)]) == 0
    record = json.loads(log.read_text().splitlines()[0])["faces"][0]
    assert record["crop"] == list(crop_box(BOX, (180, 200), MARGIN))
    assert record["p_mask"] == pytest.approx(p_mask_at(tight["onnx"], tight["photo"], MARGIN), abs=1e-4)


def test_serve_cuts_with_the_models_margin(tight: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app))
    assert cli.main(["serve", str(tight["onnx"]), "--port", "0"]) == 0  # 0: any free port, 8000 may be taken
    endpoints = {route.path: route.endpoint for route in served["app"].routes if hasattr(route, "endpoint")}
    assert endpoints["/api/health"]().margin == MARGIN
    upload = UploadFile(io.BytesIO(tight["photo"].read_bytes()), filename="photo.png")
    result = asyncio.run(endpoints["/api/predict"](upload))
    assert result.faces[0].crop == list(crop_box(BOX, (180, 200), MARGIN))


def test_a_margin_override_warns(
    tight: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    log = tmp_path / "log.jsonl"
    args = [
        "detect",
        str(tight["ckpt"]),
        "--source",
        str(tight["photo"]),
        "--log",
        str(log),
        "--margin",
        "0.5",
    ]
    assert cli.main(args) == 0
    assert f"not the {MARGIN} it was trained with" in capsys.readouterr().err
    assert json.loads(log.read_text())["faces"][0]["crop"] == list(crop_box(BOX, (180, 200), 0.5))


def test_calibrate_cuts_with_the_models_margin(
    tight: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facemask.inference import calibrate

    photos = tmp_path / "site"
    for label in ("WithMask", "WithoutMask"):
        (photos / label).mkdir(parents=True)
        (photos / label / "a.png").write_bytes(tight["photo"].read_bytes())
    margins, labelled_faces = [], calibrate.labelled_faces
    monkeypatch.setattr(
        calibrate, "labelled_faces", lambda *args: margins.append(args[3]) or labelled_faces(*args)
    )
    calibrate.run_calibration(tight["onnx"], photos, "balanced", detect=True, output=tmp_path / "out.onnx")
    assert margins == [MARGIN]
    assert load_classifier(tmp_path / "out.onnx").margin == MARGIN, "the calibrated copy keeps the margin"
