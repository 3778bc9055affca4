"""The input spec travels inside the model: a 48 px colour model trained on generated photos end to end (train,
export, predict, detect, serve, calibrate), every command reading its size and channels from the model."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi import UploadFile
from PIL import Image

import facemask.vision.faces as faces
from facemask import cli
from facemask.data.datamodule import MaskDataModule
from facemask.data.prepare import prepare
from facemask.errors import FacemaskError
from facemask.inference.calibrate import run_calibration
from facemask.inference.classifier import load_classifier
from facemask.inference.export import check_parity, export_onnx, stand_in_crops
from facemask.module import MaskClassifier
from facemask.vision.crops import FaceCropper
from facemask.vision.images import open_image
from facemask.vision.spec import DEFAULT_SPEC, InputSpec
from tests.synthetic import ADAM, face, fit
from tests.unit.test_margin import BOX, OneFace

SPEC = InputSpec(48, 3)
#: A small VGG: every family takes in_chans, and VGG its img_size (its fc head is sized by it).
SMALL_VGG = {
    "_target_": "facemask.models.vgg.MiniVGG",
    "layers": [8, "M", 16, "M"],
    "fc": [16],
    "dropout": 0.0,
}


def colour_photo(with_mask: bool, seed: int) -> Image.Image:
    """A 'photo' of a toy face in colour: a masked face's band is blue, skin is warm."""
    gray = Image.fromarray(face(with_mask, np.random.default_rng(seed))).resize((160, 180))
    red, blue = gray.point(lambda v: v * 0.9), gray.point(lambda v: v * (1.0 if with_mask else 0.6))
    return Image.merge("RGB", [red, gray.point(lambda v: v * 0.75), blue])


@pytest.fixture(scope="module")
def colour(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("colour")
    for split, count in (("train", 16), ("test", 6)):
        for name, with_mask in (("WithMask", True), ("WithoutMask", False)):
            (root / "photos" / split / name).mkdir(parents=True)
            for i in range(count):
                colour_photo(with_mask, i + 100 * with_mask + 1000 * (split == "test")).save(
                    root / "photos" / split / name / f"{i}.png"
                )
    prepare(root / "photos", root / "data", progress=False)  # the 28 px gray dataset, as mask28 was made
    datamodule = MaskDataModule(
        str(root / "data"),
        val_fraction=0.25,
        batch_size=8,
        photos=str(root / "photos" / "train"),
        test_photos=str(root / "photos" / "test"),
        cache_dir=str(root / "cache"),
        size=SPEC.size,
        channels=SPEC.channels,
    )
    model = MaskClassifier(SMALL_VGG, ADAM, input_spec=SPEC.record())
    fit(model, datamodule, root, enable_checkpointing=False, max_epochs=2).save_checkpoint(root / "m.ckpt")
    onnx = export_onnx(root / "m.ckpt", root / "m.onnx")
    return {"ckpt": root / "m.ckpt", "onnx": onnx, "photos": root / "photos", "root": root}


@pytest.fixture(autouse=True)
def stand_in_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faces, "CenterFace", OneFace)


def test_the_spec_is_checked_and_converts_every_image() -> None:
    for size, channels in ((4, 1), (48, 2), ("48", 3)):
        with pytest.raises(FacemaskError, match=r"input (size|channels)"):
            InputSpec(size, channels)
    rgb, gray = colour_photo(True, 0), colour_photo(True, 0).convert("L")
    assert SPEC.convert(rgb).shape == (48, 48, 3) and SPEC.convert(gray).shape == (48, 48, 3)
    assert DEFAULT_SPEC.convert(rgb).shape == (28, 28)
    faces_ = np.stack([SPEC.convert(rgb)] * 2)
    assert SPEC.batch(faces_).shape == (2, 3, 48, 48) and SPEC.batch(faces_).max() <= 1.0
    assert np.array_equal(SPEC.faces(SPEC.channels_first(faces_)), faces_)
    with pytest.raises(FacemaskError, match=r"faces of shape \(28, 28\) given where \(48, 48, 3\) is read"):
        SPEC.batch(DEFAULT_SPEC.empty(1))
    assert InputSpec.recorded(None) == DEFAULT_SPEC, "models from before the record read 28 px gray"


def test_the_dataset_is_made_at_the_spec_from_its_photos(colour: dict[str, Path]) -> None:
    datamodule = MaskDataModule(
        str(colour["root"] / "data"),
        val_fraction=0.25,
        photos=str(colour["photos"] / "train"),
        test_photos=str(colour["photos"] / "test"),
        cache_dir=str(colour["root"] / "cache"),
        size=48,
        channels=3,
    )
    datamodule.setup("fit")
    assert datamodule.sets["train"].images.shape[1:] == (3, 48, 48)
    test = datamodule.sets["test"]
    assert test.images.shape == (12, 3, 48, 48)
    photo = colour["photos"] / "test" / test.paths[0].parent.name / f"{test.paths[0].stem}.png"
    assert np.array_equal(SPEC.faces(test.images[:1].numpy())[0], SPEC.convert(open_image(photo)))


@pytest.mark.parametrize("kind", ["ckpt", "onnx"])
def test_the_model_carries_its_spec(colour: dict[str, Path], kind: str) -> None:
    assert load_classifier(colour[kind]).spec == SPEC


def test_export_records_the_spec_and_holds_parity(colour: dict[str, Path]) -> None:
    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(colour["onnx"])).metadata_props}
    assert json.loads(metadata["input"]) == {"size": 48, "channels": 3}
    assert "(N, 3, 48, 48)" in metadata["preprocessing"] and "RGB" in metadata["preprocessing"]
    parity = check_parity(colour["ckpt"], colour["onnx"], stand_in_crops(SPEC))
    assert parity.same_labels and parity.max_abs_diff < 1e-4 and parity.images == 256


def test_predict_and_detect_cut_at_the_models_spec(
    colour: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photo = colour["photos"] / "test" / "WithMask" / "0.png"
    expected = load_classifier(colour["onnx"]).predict_proba(SPEC.convert(open_image(photo))[None])[0]
    assert cli.main(["predict", str(colour["onnx"]), str(photo), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["p_mask"] == pytest.approx(expected, abs=1e-4)
    log = tmp_path / "log.jsonl"
    assert cli.main(["detect", str(colour["ckpt"]), "--source", str(photo), "--log", str(log)]) == 0
    frame = np.ascontiguousarray(np.asarray(Image.open(photo).convert("RGB"))[:, :, ::-1])
    crops = FaceCropper(OneFace(), load_classifier(colour["ckpt"]).margin, SPEC)(frame)[1]
    assert crops.shape == (1, 48, 48, 3)
    p_mask = float(load_classifier(colour["ckpt"]).predict_proba(crops)[0])
    assert json.loads(log.read_text())["faces"][0]["p_mask"] == pytest.approx(p_mask, abs=1e-4)


def test_a_gray_frame_goes_through_a_colour_model(
    colour: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    gray = colour["root"] / "gray.png"
    colour_photo(False, 5).convert("L").save(gray)
    assert cli.main(["predict", str(colour["onnx"]), str(gray), "--format", "json"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)[0]["p_mask"] <= 1


def test_serve_and_calibrate_read_the_spec(colour: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app))
    assert cli.main(["serve", str(colour["onnx"]), "--port", "0"]) == 0
    endpoints = {route.path: route.endpoint for route in served["app"].routes if hasattr(route, "endpoint")}
    photo = (colour["photos"] / "test" / "WithMask" / "1.png").read_bytes()
    result = asyncio.run(endpoints["/api/predict"](UploadFile(io.BytesIO(photo), filename="face.png")))
    assert len(result.faces) == 1 and result.faces[0].box == list(BOX)
    calibration, written = run_calibration(colour["onnx"], colour["photos"] / "test", "balanced")
    assert calibration.faces == 12 and load_classifier(written).spec == SPEC


def test_evaluate_scores_at_the_checkpoints_spec(colour: dict[str, Path], train_cfg) -> None:
    """``python -m facemask.evaluate ckpt_path=<a 48 px colour model>`` with data.size left at 28: the data
    module is made at the spec the checkpoint records, else the model would be fed 28 px gray."""
    from facemask.evaluate import evaluate

    root = colour["root"]
    cfg = train_cfg(
        f"ckpt_path={colour['ckpt']}",
        f"data.root={root / 'data'}",
        f"data.photos={colour['photos'] / 'train'}",
        f"data.test_photos={colour['photos'] / 'test'}",
        "data.val_fraction=0.25",
        "data.test_sets=null",
        "data.mask_rate_sets=null",
        f"data.cache_dir={root / 'cache'}",
        "gradcam_images=4",
        config="eval.yaml",
    )
    assert cfg.data.size == 28 and cfg.data.channels == 1
    metrics = evaluate(cfg)
    assert 0 <= metrics["test/acc"] <= 1 and 0 <= metrics["val/auroc"] <= 1
    assert 0 <= metrics["test/false_mask_rate/hand"] <= 1, "the occluder report, on colour faces"
    figures = Path(cfg.paths.output_dir)
    assert (figures / "figures" / "gradcam.png").is_file()
    assert (figures / "robustness" / "hard_negatives_examples.png").is_file()


def test_a_net_without_in_chans_cannot_take_colour() -> None:
    linear = {"_target_": "torch.nn.Linear", "in_features": 4, "out_features": 2}
    with pytest.raises(FacemaskError, match="takes no in_chans: it cannot read 3x48 px input"):
        MaskClassifier(linear, input_spec=SPEC.record())
    assert isinstance(MaskClassifier(linear).net, torch.nn.Linear), "28 px gray: built as it always was"
