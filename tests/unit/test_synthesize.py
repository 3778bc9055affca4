"""Mask synthesis and detector framing: geometry from landmarks, shades, drawing, re-shading, seeding,
caching and the data-module options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import facemask.vision.faces as faces
from facemask.data.datamodule import MaskDataModule
from facemask.data.folder import CLASSES, DatasetError
from facemask.data.labelled import Photos
from facemask.data.occluders import OCCLUDERS, draw_occluder
from facemask.data.sources import DatasetFaces, Synthesis
from facemask.data.synthesize import (
    KINDS,
    draw_mask,
    mask_polygon,
    mask_texture,
    pasted_mask,
    reshade,
    synthesize,
)
from facemask.errors import FacemaskError
from facemask.vision.crops import FaceCropper
from facemask.vision.images import ImageError
from facemask.vision.spec import InputSpec
from tests.synthetic import make_image_folder

#: A face in a 200x240 photo: eyes, nose tip, mouth corners, and its box.
LANDMARKS = np.array([[80, 100], [120, 100], [100, 125], [85, 145], [115, 145]], dtype=np.float32)
BOX = (60.0, 70.0, 140.0, 180.0)


class FixedFace:
    """Stands in for CenterFace: the same face in every photo."""

    def __init__(self, **_: object) -> None:
        pass

    def __call__(self, frame: np.ndarray) -> list[faces.Face]:
        return [faces.Face(BOX, 0.9, tuple(map(tuple, LANDMARKS)))]


@pytest.mark.parametrize("kind", KINDS)
def test_the_mask_covers_nose_to_chin_below_the_eyes(kind: str) -> None:
    points = np.array(mask_polygon(LANDMARKS, BOX, kind))
    assert points[:, 1].min() > 100 - 15, "not over the eyes"
    assert points[:, 1].min() < 125 and points[:, 1].max() >= 175, "from the nose bridge to the chin"
    assert BOX[0] - 5 <= points[:, 0].min() and points[:, 0].max() <= BOX[2] + 5, "within the face"


def test_shades_are_what_they_say() -> None:
    rng = np.random.default_rng(0)
    luma = {
        shade: np.asarray(mask_texture((20, 20), shade, rng).convert("L")).mean()
        for shade in ("white", "light", "dark")
    }
    assert luma["white"] > 215 and luma["dark"] < 80 and luma["dark"] < luma["light"] < luma["white"]
    printed = np.asarray(mask_texture((60, 60), "print", rng).convert("L"))
    assert len(np.unique(printed)) >= 2, "a print has a pattern"


def test_draw_mask_changes_the_lower_face_only() -> None:
    photo = Image.new("RGB", (200, 240), (120, 100, 90))
    out = np.asarray(
        draw_mask(photo, LANDMARKS, BOX, "surgical", "dark", np.random.default_rng(0)), dtype=int
    )
    changed = np.abs(out - np.asarray(photo, dtype=int)).sum(axis=2) > 30
    rows = np.nonzero(changed.any(axis=1))[0]
    assert changed[110:170, 70:130].mean() > 0.9, "the mask is drawn"
    assert rows.min() >= 85 and not changed[:80].any(), "eyes and forehead untouched"


@pytest.mark.parametrize("kind", OCCLUDERS)
def test_occluders_cover_mouth_or_chin_and_leave_nose_and_eyes_free(kind: str) -> None:
    photo = Image.new("RGB", (200, 240), (150, 110, 90))  # skin above the mouth, light below: a hand shows
    ImageDraw.Draw(photo).rectangle([0, 135, 200, 240], fill=(220, 220, 220))
    fabric = Image.new("RGB", photo.size, (30, 160, 60))
    out = np.asarray(draw_occluder(photo, LANDMARKS, BOX, kind, np.random.default_rng(1), fabric), dtype=int)
    changed = np.abs(out - np.asarray(photo, dtype=int)).sum(axis=2) > 30
    assert not changed[:128].any(), "eyes and nose tip (y = 125) untouched"
    assert changed[150:200, 70:130].mean() > 0.3, "mouth and chin covered"


def test_an_unknown_occluder_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown occluder 'glove'"):
        draw_occluder(Image.new("RGB", (200, 240)), LANDMARKS, BOX, "glove", np.random.default_rng(0))


def pasted_photo(colour: tuple[int, int, int] = (205, 228, 245)) -> Image.Image:
    """A face-coloured photo with a light-blue clip-art mask over the lower face, like Train's."""
    photo = Image.new("RGB", (200, 240), (150, 110, 90))
    ImageDraw.Draw(photo).polygon(mask_polygon(LANDMARKS, BOX, "surgical"), fill=colour)
    return photo


def test_the_pasted_mask_is_found_and_reshaded_in_place() -> None:
    photo = pasted_photo()
    face = FixedFace()(np.zeros(1))[0]
    region = pasted_mask(photo, face)
    assert region is not None
    drawn = np.zeros(region.shape, bool)
    drawn[np.asarray(photo, int).sum(axis=2) > 600] = True
    assert (region & drawn).sum() / (region | drawn).sum() > 0.9, "the region is the pasted mask"
    out = np.asarray(reshade(photo, region, "dark", np.random.default_rng(0)), int)
    assert out[region].mean() < 80, "the mask is dark now"
    np.testing.assert_array_equal(out[:80], np.asarray(photo, int)[:80])
    assert pasted_mask(Image.new("RGB", (200, 240), (150, 110, 90)), face) is None, "no mask, no region"


def test_synthesize_draws_per_face_and_reshades_seeded(tmp_path: Path) -> None:
    paths = []
    for name, photo in [("0", Image.new("RGB", (200, 240), (150, 110, 90))), ("1", pasted_photo())] * 2:
        paths.append(tmp_path / f"{len(paths)}-{name}.png")
        photo.save(paths[-1])
    face = FixedFace()(np.zeros(1))[0]
    labels, faces_ = [0, 1, 0, 1], [face, face, face, None]  # the last: no face found
    first, first_labels = synthesize(paths, faces_, labels, per_face=3, reshaded=2, occluded=1, seed=5)
    assert first.shape == (3 + 1 + 2 + 3 + 1, 28, 28) and first.dtype == np.uint8
    assert first_labels.tolist() == [1, 1, 1, 0, 1, 1, 1, 1, 1, 0], (
        "masks, an occluder; re-shades; masks, one"
    )
    again, _ = synthesize(paths, faces_, labels, per_face=3, reshaded=2, occluded=1, seed=5)
    np.testing.assert_array_equal(again, first)
    assert not np.array_equal(
        synthesize(paths, faces_, labels, per_face=3, reshaded=2, occluded=1, seed=6)[0], first
    )
    assert synthesize(paths, faces_, labels, per_face=0, reshaded=1)[0].shape == (1, 28, 28)
    both, both_labels = synthesize(paths, faces_, labels, per_face=1, reshaded=0, margins=[None, 0.0])
    assert both.shape == (4, 28, 28) and both_labels.tolist() == [1, 1, 1, 1], "each image in both framings"
    assert not np.array_equal(both[0], both[1]), "framed tighter than the whole photo"
    with pytest.raises(ValueError, match="unknown mask kinds/shades"):
        synthesize(paths, faces_, labels, shades=["glitter"])


def test_synthesis_draws_at_the_input_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A colour model learns from colour masks: drawn at its spec, cached apart from the 28 px gray ones."""
    monkeypatch.setattr(faces, "CenterFace", FixedFace)
    root, photos = photo_dataset(tmp_path, per_class=5)
    spec = InputSpec(40, 3)
    face = FixedFace()(np.zeros(1))[0]
    paths = sorted((photos / "WithoutMask").glob("*.jpg"))[:2]
    drawn, labels = synthesize(paths, [face, face], [0, 0], margins=[None, 0.2], spec=spec)
    assert drawn.shape == (4, 40, 40, 3) and labels.tolist() == [1] * 4
    assert (drawn[..., 2].astype(int) - drawn[..., 0]).std() > 1, "the masks' colours are kept"
    assert synthesize(paths, [None, None], [0, 0], spec=spec)[0].shape == (0, 40, 40, 3)
    options = {"per_face": 1, "seed": 0}
    made = {}
    for size, channels in ((28, 1), (40, 3)):
        datamodule = MaskDataModule(
            str(root),
            val_fraction=0.2,
            sources={"dataset": DatasetFaces(synthesis=Synthesis(**options))},
            photos=str(photos),
            test_photos=str(photos),  # Test's stems are among the photos'
            cache_dir=str(tmp_path / "cache"),
            size=size,
            channels=channels,
        )
        datamodule.setup("fit")
        made[channels] = datamodule.sets["train"]
    assert made[3].images.shape[1:] == (3, 40, 40) and made[1].images.shape[1:] == (1, 28, 28)
    assert len(made[3]) == len(made[1]) == 8 + 4, "the same faces, a mask drawn on each bare one"
    assert len(list((tmp_path / "cache").glob("synthetic-*.npy"))) == 2, "one cache per spec"


def photo_dataset(tmp_path: Path, per_class: int = 10) -> tuple[Path, Path]:
    """A 28x28 dataset and full-size photos of its Train images (same stems), masked ones pasted on."""
    root = make_image_folder(tmp_path / "data" / "Train", per_class=per_class).parent
    make_image_folder(root / "Test", per_class=3, seed=1)
    photos = tmp_path / "photos"
    for name, photo in (
        ("WithoutMask", Image.new("RGB", (200, 240), (150, 110, 90))),
        ("WithMask", pasted_photo()),
    ):
        (photos / name).mkdir(parents=True)
        for i in range(per_class):
            photo.save(photos / name / f"{i}.jpg")
    return root, photos


def test_datamodule_adds_masked_copies_of_training_faces_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "CenterFace", FixedFace)
    root, photos = photo_dataset(tmp_path)
    options = {"per_face": 2, "reshaded": 1, "occluded": 1, "seed": 0}
    datamodule = MaskDataModule(
        str(root),
        val_fraction=0.2,
        sources={"dataset": DatasetFaces(synthesis=Synthesis(**options))},
        photos=str(photos),
    )
    datamodule.setup("fit")
    train, val = datamodule.sets["train"], datamodule.sets["val"]
    assert len(train) == 16 + 8 * 3 + 8, "2 masks and an occluder per unmasked, a re-shade per masked face"
    assert train.labels[16:].sum() == 8 * 2 + 8 and len(val) == 4


def detector_framed(root: Path, photos: Path, cache: Path) -> MaskDataModule:
    datamodule = MaskDataModule(
        str(root),
        val_fraction=0.2,
        sources={"dataset": DatasetFaces(framing="detector")},
        photos=str(photos),
        cache_dir=str(cache),
    )
    datamodule.setup("fit")
    return datamodule


def test_detector_framing_reframes_the_training_part_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "CenterFace", FixedFace)
    root, photos = photo_dataset(tmp_path)
    plain = MaskDataModule(str(root), val_fraction=0.2)
    plain.setup("fit")
    framed = detector_framed(root, photos, tmp_path / "cache")
    train, face = framed.sets["train"], FixedFace()(np.zeros(1))[0]
    expected = [
        FaceCropper().crop(Image.open(photos / CLASSES[label] / f"{path.stem}.jpg"), face)
        for path, label in zip(train.paths, train.labels.tolist(), strict=True)
    ]
    np.testing.assert_array_equal(train.images[:, 0].numpy(), np.stack(expected))
    torch.testing.assert_close(framed.sets["val"].images, plain.sets["val"].images)
    torch.testing.assert_close(train.labels, plain.sets["train"].labels)
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir())
    assert cached == ["detections", "framed"], "detections and framed images are cached"
    monkeypatch.setattr(faces, "CenterFace", None)  # a cache hit needs no detector
    again = detector_framed(root, photos, tmp_path / "cache")
    torch.testing.assert_close(again.sets["train"].images, train.images)


def test_photo_options_fail_clearly(tmp_path: Path) -> None:
    root, _ = photo_dataset(tmp_path, per_class=4)
    with pytest.raises(
        FacemaskError,
        match=r"data\.sources\.dataset\.framing='tight': expected one of dataset, detector, both",
    ):
        MaskDataModule(str(root), sources={"dataset": DatasetFaces(framing="tight")})
    missing = MaskDataModule(
        str(root), sources={"dataset": DatasetFaces(framing="detector")}, photos=str(tmp_path / "nowhere")
    )
    with pytest.raises(DatasetError, match=r"nowhere: full-size training photos \(data.photos\) not found"):
        missing.setup("fit")


class FaceUnlessBlack(FixedFace):
    """The fixed face, except in an all-black photo."""

    def __call__(self, frame: np.ndarray) -> list[faces.Face]:
        return super().__call__(frame) if frame.any() else []


def test_a_detected_test_set_is_cut_like_detect_cuts_faces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "CenterFace", FaceUnlessBlack)
    root, photos = photo_dataset(tmp_path, per_class=3)
    Image.new("RGB", (200, 240)).save(photos / "WithMask" / "black.png")
    datamodule = MaskDataModule(
        str(root),
        test_sets={"street": Photos(photos=str(photos)), "gone": Photos(photos=str(tmp_path / "no"))},
    )
    datamodule.setup("test")
    street = datamodule.sets["street"]
    assert datamodule.test_set_names == ["test", "street"], "a missing set is skipped"
    assert len(street) == 6 and street.labels.tolist() == [1, 1, 1, 0, 0, 0], (
        "the photo without a face is left out"
    )
    frame = np.asarray(Image.open(photos / "WithMask" / "0.jpg"))[:, :, ::-1]
    np.testing.assert_array_equal(street.images[0, 0].numpy(), FaceCropper(FixedFace())(frame)[1][0])


def test_an_unreadable_photo_is_named_or_skipped_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "CenterFace", FixedFace)
    root, photos = photo_dataset(tmp_path, per_class=3)
    (photos / "WithMask" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    strict = MaskDataModule(str(root), test_sets={"street": Photos(photos=str(photos))})
    with pytest.raises(ImageError, match=r"bad\.png: "):
        strict.setup("test")
    lenient = MaskDataModule(str(root), test_sets={"street": Photos(photos=str(photos))}, skip_bad_files=True)
    lenient.setup("test")
    assert len(lenient.sets["street"]) == 6
