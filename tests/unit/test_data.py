"""Data loading, split and bad input on tiny generated ImageFolders."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from facemask.data.datamodule import MaskDataModule
from facemask.data.folder import CLASSES, DatasetError, ImageSet, load_image_folder
from facemask.data.labelled import DatasetFolder
from facemask.data.root import dataset_of, find_data_root, find_root, missing
from facemask.data.sets import fetch_hint
from facemask.data.splits import stratified_fold, stratified_split
from facemask.errors import FacemaskError
from facemask.vision.images import ImageError
from tests.synthetic import make_image_folder


@pytest.mark.parametrize("names", [("WithMask", "WithoutMask"), ("with_mask", "without_mask")])
def test_both_folder_conventions_give_the_fixed_class_index(tmp_path: Path, names: tuple[str, str]) -> None:
    images = load_image_folder(make_image_folder(tmp_path / "split", per_class=3, names=names))
    assert images.images.shape == (6, 1, 28, 28) and images.images.dtype == torch.uint8
    assert CLASSES == ("WithoutMask", "WithMask")
    for path, label in zip(images.paths, images.labels.tolist(), strict=True):
        assert label == (1 if path.parent.name.lower().replace("_", "") == "withmask" else 0)


def test_images_of_another_size_are_converted_like_the_dataset(tmp_path: Path) -> None:
    from PIL import Image

    root = make_image_folder(tmp_path / "split", per_class=2)
    Image.new("RGB", (97, 60), (200, 10, 10)).save(root / "WithMask" / "big.jpg")
    images = load_image_folder(root)
    assert images.images.shape == (5, 1, 28, 28)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "empty file"), (b"just some text", "not an image"), (None, "corrupt or truncated")],
)
def test_a_bad_file_stops_loading_and_is_named(tmp_path: Path, content: bytes | None, problem: str) -> None:
    root = make_image_folder(tmp_path / "split", per_class=2)
    bad = root / "WithoutMask" / "bad.png"
    if content is None:  # a real PNG cut in half
        content = (root / "WithoutMask" / "0.png").read_bytes()[:60]
    bad.write_bytes(content)
    with pytest.raises(ImageError, match=problem) as err:
        load_image_folder(root)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_several_bad_files_are_named_at_once(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "split", per_class=2)
    (root / "WithMask" / "empty.png").write_bytes(b"")
    (root / "WithoutMask" / "notes.png").write_text("not an image")
    with pytest.raises(
        ImageError, match=r"split: 2 unreadable image files \(data.skip_bad_files=true"
    ) as err:
        load_image_folder(root)
    lines = str(err.value).splitlines()
    assert lines[1:] == [
        f"  {root / 'WithMask' / 'empty.png'}: empty file (0 bytes)",
        f"  {root / 'WithoutMask' / 'notes.png'}: not an image file Pillow can read",
    ]


def test_skip_bad_files_skips_and_counts_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_image_folder(tmp_path / "split", per_class=2)
    (root / "WithMask" / "empty.png").write_bytes(b"")
    (root / "WithoutMask" / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        images = load_image_folder(root, skip_bad_files=True)
    assert len(images) == 4
    assert "skipped 2 unreadable file(s)" in caplog.text and "empty.png" in caplog.text


def test_layout_errors_say_which_folder(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "split", per_class=2)
    (root / "Beards").mkdir()
    with pytest.raises(DatasetError, match="Beards: unknown class folder"):
        load_image_folder(root)
    (root / "Beards").rmdir()
    for path in (root / "WithMask").iterdir():
        path.unlink()
    with pytest.raises(DatasetError, match="WithMask: class folder is empty"):
        load_image_folder(root)
    (root / "WithMask").rmdir()
    with pytest.raises(DatasetError, match=r"class folder WithMask/ .* is missing"):
        load_image_folder(root)
    with pytest.raises(DatasetError, match="split folder not found"):
        load_image_folder(tmp_path / "nothing")


def test_missing_split_is_named(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "data" / "Train", per_class=4)
    datamodule = MaskDataModule(root=str(tmp_path / "data"))
    with pytest.raises(DatasetError, match=r"split folder Test/ \(or test/\) is missing"):
        datamodule.setup("fit")


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FACEMASK_DATA", raising=False)
    with pytest.raises(
        DatasetError, match=r"dataset not found at .*nowhere: get it with `facemask data download"
    ):
        find_root(str(tmp_path / "nowhere"))
    make_image_folder(tmp_path / "root" / "mask28" / "Train", per_class=2)
    monkeypatch.setenv("FACEMASK_DATA", str(tmp_path / "root"))
    assert find_data_root() == tmp_path / "root"
    assert find_root(None) == tmp_path / "root" / "mask28"
    assert find_root(str(tmp_path / "root")) == tmp_path / "root" / "mask28", "a data root names its dataset"


@pytest.mark.parametrize("name", ["mask28", "my-dataset"])
def test_an_older_facemask_data_naming_the_dataset_means_its_parent(tmp_path, monkeypatch, name: str) -> None:
    make_image_folder(tmp_path / name / "Train", per_class=2)
    monkeypatch.setenv("FACEMASK_DATA", str(tmp_path / name))
    assert find_data_root() == tmp_path
    assert dataset_of(find_data_root()) == tmp_path / name
    assert find_root(None) == tmp_path / name
    assert dataset_of(tmp_path / "elsewhere") == tmp_path / "elsewhere" / "mask28"


def test_the_default_data_root_is_the_first_holding_the_dataset(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("FACEMASK_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_data_root() == Path("data"), "nothing anywhere: data/, where downloads go"
    make_image_folder(tmp_path / "shared" / "data" / "mask28" / "Train", per_class=2)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert find_data_root() == Path("../shared/data")
    make_image_folder(tmp_path / "project" / "data" / "mask28" / "Train", per_class=2)
    assert find_data_root() == Path("data")


def test_a_missing_set_names_the_set_what_needs_it_and_the_command(tmp_path: Path) -> None:
    error = missing(tmp_path / "data" / "realfaces" / "bare" / "train", "face crop folder")
    assert str(error) == (
        f"{tmp_path}/data/realfaces/bare/train: face crop folder not found (realfaces: ~20k real face crops; "
        "needed by data/real=realfaces (experiment=best), the mask rates; get it with "
        "`facemask data download realfaces`)"
    )
    assert str(missing(tmp_path / "mine", "photos")) == f"{tmp_path}/mine: photos not found"
    assert fetch_hint(tmp_path / "data" / "realworld" / "photos").startswith(" (realworld: MFR2")


def test_stratified_split_keeps_class_shares_and_is_deterministic() -> None:
    labels = torch.tensor([0] * 60 + [1] * 40)
    train, val = stratified_split(labels, 0.2, seed=3)
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))
    assert labels[val].bincount().tolist() == [12, 8]
    again_train, again_val = stratified_split(labels, 0.2, seed=3)
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    assert not torch.equal(val, stratified_split(labels, 0.2, seed=4)[1])


def test_stratified_folds_cover_every_sample_once() -> None:
    labels = torch.tensor([0] * 53 + [1] * 47)
    vals = [stratified_fold(labels, 5, fold, seed=1)[1] for fold in range(5)]
    assert sorted(torch.cat(vals).tolist()) == list(range(100))
    for fold, val in enumerate(vals):
        train, _ = stratified_fold(labels, 5, fold, seed=1)
        assert not set(train.tolist()) & set(val.tolist()) and len(train) + len(val) == 100
        assert labels[val].bincount().tolist() in ([11, 10], [11, 9], [10, 10], [10, 9])
    assert torch.equal(vals[2], stratified_fold(labels, 5, 2, seed=1)[1])
    with pytest.raises(FacemaskError, match=r"data.fold=5 is not one of the 5 folds"):
        stratified_fold(labels, 5, 5, seed=1)


def test_datamodule_batches_are_scaled_and_augmented_only_in_training(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    class Invert(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 1 - x

    extra = make_image_folder(tmp_path / "extra", per_class=3, names=("with_mask", "without_mask"))
    datamodule = MaskDataModule(
        root=str(tiny_dataset),
        val_fraction=0.25,
        batch_size=8,
        augment=Invert(),
        test_sets={
            "street": DatasetFolder(folder=str(extra)),
            "absent": DatasetFolder(folder=str(tmp_path / "absent")),
        },
    )
    datamodule.setup("fit")
    assert [len(datamodule.sets[n]) for n in ("train", "val", "test", "street")] == [30, 10, 12, 6]
    assert datamodule.test_set_names == ["test", "street"]
    assert datamodule.sets["val"].labels.bincount().tolist() == [5, 5]

    raw = next(iter(datamodule.val_dataloader()))
    datamodule.trainer = type("T", (), {"training": False})()
    images, labels = datamodule.on_after_batch_transfer(raw, 0)
    assert images.dtype == torch.float32 and images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, raw[0].float() / 255) and torch.equal(labels, raw[1])
    datamodule.trainer.training = True
    augmented, _ = datamodule.on_after_batch_transfer(raw, 0)
    assert torch.allclose(augmented, 1 - raw[0].float() / 255)


def test_class_balanced_repeats_the_smaller_class_to_match_the_larger() -> None:
    images = ImageSet(
        torch.arange(10).view(10, 1, 1, 1), torch.tensor([1] * 8 + [0] * 2), [Path(f"{i}") for i in range(10)]
    )
    balanced = images.class_balanced()
    assert torch.bincount(balanced.labels).tolist() == [8, 8]
    assert balanced.images[10:, 0, 0, 0].tolist() == [8, 9] * 3, "the bare faces three more times"
    one_class = ImageSet(images.images[:8], images.labels[:8], images.paths[:8])
    assert one_class.class_balanced() is one_class
