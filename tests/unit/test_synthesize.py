"""Mask synthesis: geometry from landmarks, shades, the drawing, seeding, caching and the data-module option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facemask.inference.faces as faces
from facemask.data.datamodule import MaskDataModule
from facemask.data.synthesize import KINDS, draw_mask, mask_polygon, mask_texture, synthesize
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


def test_synthesize_is_seeded_filtered_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faces, "CenterFace", FixedFace)
    photos = tmp_path / "photos" / "WithoutMask"
    photos.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (200, 240), (100 + 20 * i, 90, 80)).save(photos / f"{i}.jpg")
    first = synthesize(
        tmp_path / "photos", stems={"0", "2", "3"}, per_face=2, seed=5, cache_dir=tmp_path / "cache"
    )
    assert first.shape == (6, 28, 28) and first.dtype == np.uint8
    assert len(list((tmp_path / "cache").iterdir())) == 1
    monkeypatch.setattr(faces, "CenterFace", None)  # a cache hit needs no detector
    np.testing.assert_array_equal(
        synthesize(
            tmp_path / "photos", stems={"0", "2", "3"}, per_face=2, seed=5, cache_dir=tmp_path / "cache"
        ),
        first,
    )
    with pytest.raises(ValueError, match="unknown mask kinds/shades"):
        synthesize(tmp_path / "photos", shades=["glitter"])


def test_datamodule_adds_masked_copies_of_training_faces_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "CenterFace", FixedFace)
    root = make_image_folder(tmp_path / "data" / "Train", per_class=10).parent
    make_image_folder(root / "Test", per_class=3, seed=1)
    photos = tmp_path / "photos" / "WithoutMask"
    photos.mkdir(parents=True)
    for i in range(10):
        Image.new("RGB", (200, 240), (120, 90, 80)).save(photos / f"{i}.jpg")
    options = {"photos": str(tmp_path / "photos"), "per_face": 1, "seed": 0, "cache_dir": None}
    datamodule = MaskDataModule(str(root), val_fraction=0.2, extra_test_sets={}, synthetic=options)
    datamodule.setup("fit")
    train, val = datamodule.sets["train"], datamodule.sets["val"]
    assert len(train) == 16 + 8, "one masked copy per unmasked training face, none of the 2 validation faces"
    assert (train.labels[16:] == 1).all() and len(val) == 4
