"""Labelled real photos: annotated faces matched to the detector's, cut like deployment cuts them, added to
training or validated beside the split (val_real/*), cached and reused."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import facemask.vision.faces as faces
from facemask.data.datamodule import MaskDataModule
from facemask.data.folder import DatasetError
from facemask.data.labelled import Photos
from facemask.data.photos import framed_faces, labelled_faces
from facemask.data.sources import DatasetFaces, RealPhotos, Synthesis
from facemask.errors import FacemaskError
from facemask.module import MaskClassifier
from facemask.vision.crops import DEFAULT_MARGIN, FaceCropper
from tests.synthetic import ADAM, LEFT, RIGHT, TINY_NET, fit, landmarks, make_image_folder


class TwoFaces:
    """Stands in for CenterFace: a left and a right face in every photo."""

    def __init__(self, **_: object) -> None:
        pass

    def __call__(self, frame: np.ndarray) -> list[faces.Face]:
        return [faces.Face(box, 0.9, landmarks(box)) for box in (LEFT, RIGHT)]


def annotated_photos(folder: Path, n: int = 3) -> Path:
    """``n`` photos under ``folder/photos``, and ``folder/boxes.csv``: in each, a masked face boxed eyes to
    chin on the left, a bare one on the right, and a box where no face is found (the detector's miss)."""
    photos = folder / "photos"
    photos.mkdir(parents=True)
    rows = ["file,split,face,x0,y0,x1,y1,mask_type,class"]
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (240, 400, 3), dtype=np.uint8)).save(photos / f"{i}.jpg")
        rows += [
            f"photos/{i}.jpg,train,0,60,90,140,190,cloth,WithMask",
            f"photos/{i}.jpg,train,1,260,90,340,190,,WithoutMask",
            f"photos/{i}.jpg,train,2,180,10,230,30,,WithoutMask",  # between the faces: missed
        ]
    (folder / "boxes.csv").write_text("\n".join(rows) + "\n")
    return photos


def test_annotated_faces_are_the_detected_faces_holding_their_centre(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(faces, "CenterFace", TwoFaces)
    photos = annotated_photos(tmp_path)
    with caplog.at_level(logging.WARNING):
        faces_set = framed_faces(
            labelled_faces(photos, tmp_path / "boxes.csv", tmp_path / "cache"), DEFAULT_MARGIN
        )
    assert faces_set.labels.tolist() == [1, 0] * 3, "the miss is left out, never relabelled"
    assert "missed 3 of 9 labelled faces" in caplog.text
    photo = Image.open(photos / "0.jpg")
    for image, box in zip(faces_set.images[:2, 0].numpy(), (LEFT, RIGHT), strict=True):
        np.testing.assert_array_equal(image, FaceCropper().crop(photo, faces.Face(box, 1.0)))
    monkeypatch.setattr(faces, "CenterFace", None)  # a cache hit needs no detector
    again = framed_faces(labelled_faces(photos, tmp_path / "boxes.csv", tmp_path / "cache"), DEFAULT_MARGIN)
    np.testing.assert_array_equal(again.images.numpy(), faces_set.images.numpy())


def test_a_boxes_csv_that_is_wrong_says_where(tmp_path: Path) -> None:
    photos = annotated_photos(tmp_path, n=1)
    bad = tmp_path / "bad.csv"
    bad.write_text("file,x0,y0,x1,y1\nphotos/0.jpg,1,2,3,4\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: missing column\(s\) class"):
        labelled_faces(photos, bad)
    bad.write_text("file,x0,y0,x1,y1,class\nphotos/0.jpg,1,2,3,4,hat\n")
    with pytest.raises(DatasetError, match=r"bad\.csv:2: unknown class 'hat'"):
        labelled_faces(photos, bad)
    with pytest.raises(DatasetError, match=r"nothing\.csv: boxes CSV not found"):
        labelled_faces(photos, tmp_path / "nothing.csv")


def real_datamodule(
    tmp_path: Path, source: dict[str, object] | None = None, **options: object
) -> MaskDataModule:
    """The tiny dataset with 3 annotated photos as a training source ``mine`` (with ``source``'s options)
    and as a validation set, beside one whose folder is missing; made once per folder."""
    root = tmp_path / "data"
    if not root.is_dir():
        make_image_folder(root / "Train", per_class=10)
        make_image_folder(root / "Test", per_class=3, seed=1)
        annotated_photos(tmp_path / "real")
    photos = {"photos": str(tmp_path / "real" / "photos"), "boxes": str(tmp_path / "real" / "boxes.csv")}
    datamodule = MaskDataModule(
        str(root),
        val_fraction=0.2,
        batch_size=8,
        sources={"dataset": DatasetFaces(), "mine": RealPhotos(**photos, **(source or {}))},
        val_sets={"val_real": Photos(**photos), "val_gone": Photos(photos=str(tmp_path / "nowhere"))},
        cache_dir=str(tmp_path / "cache"),
        **options,
    )
    datamodule.setup("fit")
    return datamodule


def test_real_photos_join_training_and_validation_pools_with_the_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "CenterFace", TwoFaces)
    datamodule = real_datamodule(tmp_path)
    sets = datamodule.sets
    assert len(sets["train"]) == 16 + 6, "the split's training part and the 6 real faces found"
    assert datamodule.val_set_names == ["val", "val_dataset", "val_real"], "a missing set is skipped"
    assert len(sets["val"]) == 2 * len(sets["val_dataset"]) + len(sets["val_real"]) == 2 * 4 + 6, (
        "each set weighs alike in the pool: the split's 4 faces twice, the 6 real ones once"
    )
    plain = real_datamodule(tmp_path / "c", val_weights="size")
    assert len(plain.sets["val"]) == 4 + 6
    assert datamodule.test_set_names == ["test"]
    only_real = real_datamodule(tmp_path / "b", val_pool=["val_real"])
    np.testing.assert_array_equal(only_real.sets["val"].images, only_real.sets["val_real"].images)
    with pytest.raises(FacemaskError, match=r"data\.val_pool names val_gym: expected val_dataset"):
        MaskDataModule(str(tmp_path), val_sets={}, val_pool=["val_gym"])


def test_missing_real_training_photos_stop_with_the_option(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "data" / "Train", per_class=4).parent
    make_image_folder(root / "Test", per_class=2, seed=1)
    datamodule = MaskDataModule(str(root), sources={"mine": RealPhotos(photos=str(tmp_path / "no"))})
    with pytest.raises(DatasetError, match=r"no: training faces \(data\.sources\.mine\) not found"):
        datamodule.setup("fit")


def test_each_validation_set_is_scored_and_the_threshold_comes_from_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "CenterFace", TwoFaces)
    datamodule = real_datamodule(tmp_path)
    model = MaskClassifier(TINY_NET, ADAM, operating_point={"metric": "precision", "target": 0.9})
    trainer = fit(model, datamodule, tmp_path, enable_checkpointing=False)
    logged = trainer.callback_metrics
    for prefix in ("val", "val_dataset", "val_real"):
        assert 0 <= float(logged[f"{prefix}/acc"]) <= 1 and f"{prefix}/loss" in logged
    assert float(logged["val/threshold"]) == float(model.threshold)
    # each set enters the pool so that it weighs alike: the split's 4 faces twice, the 6 real ones once
    pooled = (2 * len(datamodule.sets["val_dataset"]), len(datamodule.sets["val_real"]))
    weighted = (
        float(logged["val_dataset/loss"]) * pooled[0] + float(logged["val_real/loss"]) * pooled[1]
    ) / sum(pooled)
    assert float(logged["val/loss"]) == pytest.approx(weighted, rel=1e-4), "val is the weighted pool of both"


def test_real_faces_repeat_reframe_and_get_masks_drawn_on_their_bare_faces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "CenterFace", TwoFaces)
    plain = real_datamodule(tmp_path / "a").sets["train"]
    repeated = real_datamodule(tmp_path / "b", real_repeat=3).sets["train"]
    assert len(repeated) == 16 + 3 * 6, "each real face three times"
    np.testing.assert_array_equal(repeated.images[-6:], plain.images[-6:])
    own = real_datamodule(tmp_path / "b", {"repeat": 2}, real_repeat=3).sets["train"]
    assert len(own) == 16 + 2 * 6, "a source's own repeat before the data module's"
    two_framings = real_datamodule(tmp_path / "d", real_margins=[0.1, 0.36]).sets["train"]
    assert len(two_framings) == 16 + 2 * 6, "each real face tightly cut, then with the deployment margin"
    np.testing.assert_array_equal(two_framings.images[-6:], plain.images[-6:])
    photo = Image.open(tmp_path / "d" / "real" / "photos" / "0.jpg")
    np.testing.assert_array_equal(
        two_framings.images[16, 0].numpy(), FaceCropper(margin=0.1).crop(photo, faces.Face(LEFT, 1.0))
    )
    own_margins = real_datamodule(tmp_path / "d", {"margins": [0.1]}, real_margins=[0.2, 0.36]).sets["train"]
    np.testing.assert_array_equal(own_margins.images[16:], two_framings.images[16:22])
    synthesis = {"synthesis": Synthesis(per_face=2, reshaded=1, seed=0)}
    drawn = real_datamodule(tmp_path / "c", synthesis).sets["train"]
    new = drawn.subset(torch.arange(16 + 6, len(drawn)))
    assert new.labels.tolist() == [1] * 6, "two masks on each of the 3 bare real faces, none on masked ones"
    bare = plain.images[-6:][1::2]  # the right faces: bare
    for image, source in zip(new.images[::2], bare, strict=True):
        assert (image.float() - source.float()).abs().mean() > 2, "a mask drawn over the framed face"
        assert (image[0, :8].float() - source[0, :8].float()).abs().mean() < 8, "the eyes stay free"
    monkeypatch.setattr(faces, "CenterFace", None)  # cached: drawn once, no detector needed again
    again = real_datamodule(tmp_path / "c", synthesis)
    np.testing.assert_array_equal(again.sets["train"].images.numpy(), drawn.images.numpy())
    with pytest.raises(FacemaskError, match=r"data\.real_repeat=0: expected a whole number >= 1"):
        MaskDataModule(str(tmp_path), real_repeat=0)
    with pytest.raises(FacemaskError, match=r"data\.sources\.mine\.per_epoch=0: expected a whole number"):
        MaskDataModule(str(tmp_path), sources={"mine": RealPhotos(photos="x", per_epoch=0)})
    with pytest.raises(FacemaskError, match=r"data\.sources\.mine\.margins=\[-1\]: -1 is not a margin"):
        MaskDataModule(str(tmp_path), sources={"mine": RealPhotos(photos="x", margins=[-1])})
    with pytest.raises(FacemaskError, match=r"data\.real_margins=\[0\.1, -0\.2\]: -0\.2 is not a margin"):
        MaskDataModule(str(tmp_path), real_margins=[0.1, -0.2])
