"""Folders of face crops as training and validation faces: padded, the detector's face or the crop itself (misses
counted, never relabelled), cached; real sources drawn per epoch; the validation pool weighted by set."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import facemask.vision.faces as faces
from facemask.data.crops import framed_crops
from facemask.data.datamodule import MaskDataModule, pool_repeats
from facemask.data.draws import SourceDraws
from facemask.data.labelled import Crops
from facemask.data.sources import DatasetFaces, RealCrops
from facemask.errors import DatasetError, FacemaskError
from facemask.vision.crops import CROP_PAD, FaceCropper, face_of_crop, pad_crop
from facemask.vision.images import ImageError, load_frame
from tests.synthetic import SquareFaces, crop_folder, make_image_folder


def test_crops_are_framed_as_deployment_frames_a_face_and_misses_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(faces, "CenterFace", SquareFaces)
    folder = crop_folder(tmp_path / "crops")
    with caplog.at_level(logging.INFO):
        images = framed_crops(folder, 0.36, cache_dir=tmp_path / "cache")
    assert images.labels.tolist() == [1] * 4 + [0] * 4, "labels from the class folders, misses kept"
    assert "found the face in 6 of 8 crops; 2 framed as the crop itself" in caplog.text
    cropper = FaceCropper(SquareFaces(), margin=0.36)
    for path, image in zip(images.paths, images.images[:, 0].numpy(), strict=True):
        crop = load_frame(path)
        found, expected = cropper.crop_of_crop(crop)
        np.testing.assert_array_equal(image, expected, err_msg="training frames a crop as mine does")
        padded = pad_crop(crop)
        if crop.shape[0] == crop.shape[1]:  # the detector's face, in the padded frame
            assert found.score == 0.9 and found.box[0] == pytest.approx(0.3 * padded.shape[1])
        else:  # the crop itself is the face box, its margin reaching into the padding
            border = round(CROP_PAD * 64)
            assert found == face_of_crop([], crop.shape)
            assert found.box == (border, border, border + 48, border + 64) and found.score == 0


def test_without_fallback_misses_are_left_out_and_the_cache_needs_no_detector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(faces, "CenterFace", SquareFaces)
    folder = crop_folder(tmp_path / "bare", classes=("",))
    with caplog.at_level(logging.INFO):
        kept = framed_crops(folder, 0.1, label=0, fallback=False, cache_dir=tmp_path / "cache")
    assert kept.labels.tolist() == [0, 0, 0] and "found the face in 3 of 4 crops; 1 left out" in caplog.text
    monkeypatch.setattr(faces, "CenterFace", None)  # a cache hit detects nothing
    again = framed_crops(folder, 0.1, label=0, fallback=False, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.images.numpy(), kept.images.numpy())


def test_bad_crop_folders_get_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faces, "CenterFace", SquareFaces)
    with pytest.raises(DatasetError, match=r"nowhere: face crop folder not found"):
        framed_crops(tmp_path / "nowhere", 0.36, label=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: no image files"):
        framed_crops(tmp_path / "empty", 0.36, label=0)
    folder = crop_folder(tmp_path / "some", classes=("",))
    (folder / "9.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match=r"9\.jpg: not an image file Pillow can read"):
        framed_crops(folder, 0.36, label=0)
    assert len(framed_crops(folder, 0.36, label=0, skip_bad_files=True)) == 4
    datamodule = MaskDataModule(
        str(tiny_root(tmp_path)), sources={"x": RealCrops(crops=str(folder), label="hat")}
    )
    with pytest.raises(DatasetError, match=r"some: label 'hat' is not a class"):
        datamodule.setup("fit")


def tiny_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    if not root.is_dir():
        make_image_folder(root / "Train", per_class=10)
        make_image_folder(root / "Test", per_class=3, seed=1)
    return root


def test_crop_sources_join_training_drawn_per_epoch_and_validation_weighted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "CenterFace", SquareFaces)
    masked = crop_folder(tmp_path / "masked", found=6, missed=0)
    bare = crop_folder(tmp_path / "bare", found=4, missed=1, classes=("",))
    datamodule = MaskDataModule(
        str(tiny_root(tmp_path)),
        val_fraction=0.2,
        batch_size=4,
        sources={
            "dataset": DatasetFaces(),
            "masked": RealCrops(crops=str(masked), per_epoch=5),
            "bare": RealCrops(crops=str(bare), label="WithoutMask"),
            "hard_negatives": RealCrops(crops=str(bare), label="WithoutMask", repeat=3),
        },
        real_margins=[0.1, 0.36],
        val_sets={"val_bare": Crops(crops=str(bare), label="WithoutMask")},
        mask_rate_sets={"incorrect": Crops(crops=str(bare), label="WithMask")},
        cache_dir=str(tmp_path / "cache"),
    )
    datamodule.setup("fit")
    assert datamodule.train_sizes == {"dataset": 16, "masked": 24, "bare": 10, "hard_negatives": 30}
    loader = datamodule.train_dataloader()
    drawn = list(iter(loader.sampler))
    assert len(drawn) == len(loader.sampler) == 16 + 5 + 10 + 30, "masked: 5 an epoch, the rest all"
    assert sum(16 <= i < 40 for i in drawn) == 5
    assert datamodule.sets["train"].labels[40:].sum() == 0, "bare crops and hard negatives are WithoutMask"
    # the pool: the split (4 faces) and the 5 bare validation crops each once, near enough alike
    assert len(datamodule.sets["val"]) == 4 + 5 and datamodule.val_set_names == [
        "val",
        "val_dataset",
        "val_bare",
    ]
    assert len(datamodule.mask_rate_sets["incorrect"]) == 5


def test_source_draws_take_a_fixed_share_and_see_the_whole_source_over_epochs() -> None:
    torch.manual_seed(0)
    draws = SourceDraws([5, 100, 50], [None, 10, 80])
    seen: Counter[int] = Counter()
    for _ in range(60):
        epoch = list(draws)
        assert len(epoch) == len(draws) == 5 + 10 + 50 and len(set(epoch)) == len(epoch)
        assert set(range(5)) <= set(epoch) and sum(5 <= i < 105 for i in epoch) == 10
        seen.update(epoch)
    assert set(seen) == set(range(155)), "every image of a drawn source comes up over the epochs"
    with pytest.raises(ValueError, match="2 sources but 1 draws"):
        SourceDraws([1, 2], [None])


def test_pool_repeats_give_each_set_its_weight() -> None:
    sizes = {"val_dataset": 132, "val_real": 380, "val_masked": 1739, "val_bare": 887}
    assert pool_repeats(sizes) == {"val_dataset": 13, "val_real": 5, "val_masked": 1, "val_bare": 2}
    assert pool_repeats(sizes, {"val_masked": 2}) == {
        "val_dataset": 7,
        "val_real": 2,
        "val_masked": 1,
        "val_bare": 1,
    }
    assert pool_repeats({"a": 10, "b": 10}) == {"a": 1, "b": 1}


def test_validation_weights_and_set_names_are_checked(tmp_path: Path) -> None:
    bare = Crops(crops="bare")
    with pytest.raises(FacemaskError, match=r"data\.val_weights names val_gym: expected val_dataset"):
        MaskDataModule(str(tmp_path), val_sets={}, val_weights={"val_gym": 1})
    with pytest.raises(FacemaskError, match=r"every weight must be a number > 0"):
        MaskDataModule(str(tmp_path), val_weights={"val_dataset": 0})
    with pytest.raises(FacemaskError, match=r"data: set name\(s\) val_bare used twice"):
        MaskDataModule(str(tmp_path), val_sets={"val_bare": bare}, mask_rate_sets={"val_bare": bare})
    assert pool_repeats({"a": 10, "b": 300}, "size") == {"a": 1, "b": 1}, "size: the plain concatenation"
    with pytest.raises(FacemaskError, match=r"data\.val_weights='every': expected null, size, or a mapping"):
        MaskDataModule(str(tmp_path), val_weights="every")


def test_a_real_source_draws_and_repeats_whole_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "CenterFace", SquareFaces)
    folder = crop_folder(tmp_path / "bare", classes=("",))
    for key, value in (("per_epoch", -5), ("repeat", 1.5)):
        source = RealCrops(crops=str(folder), label="WithoutMask", **{key: value})
        with pytest.raises(
            FacemaskError, match=rf"data\.sources\.bare\.{key}={value}: expected a whole number"
        ):
            MaskDataModule(str(tiny_root(tmp_path)), sources={"bare": source})
