"""``facemask data prepare`` on generated photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facemask.data.folder import DatasetError, load_image_folder
from facemask.data.prepare import prepare
from facemask.vision.images import load_image
from tests.synthetic import face


def photo(with_mask: bool, seed: int, size: tuple[int, int] = (90, 120)) -> Image.Image:
    """A colour 'photo' of a toy face."""
    gray = Image.fromarray(face(with_mask, np.random.default_rng(seed))).resize(size)
    return Image.merge("RGB", [gray, gray.point(lambda v: v * 0.8), gray.point(lambda v: v * 0.6)])


def make_photos(root: Path, per_class: int = 10, start: int = 0) -> Path:
    for folder, with_mask in (("with_mask", True), ("without_mask", False)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_class):
            photo(with_mask, i + 100 * with_mask).save(root / folder / f"{i}.jpg", quality=90)
    return root


def test_prepare_splits_with_a_seed_and_converts_like_the_dataset(tmp_path: Path) -> None:
    src = make_photos(tmp_path / "src", per_class=20)
    report = prepare(src, tmp_path / "out", test_fraction=0.25, seed=3, progress=False)
    assert report.counts == {
        ("Train", "WithMask"): 15,
        ("Test", "WithMask"): 5,
        ("Train", "WithoutMask"): 15,
        ("Test", "WithoutMask"): 5,
    }
    written = sorted((tmp_path / "out").rglob("*.png"))
    assert len(written) == 40 and all(
        Image.open(p).size == (28, 28) and Image.open(p).mode == "L" for p in written
    )
    first = next(p for p in written if p.parent.name == "WithMask")
    np.testing.assert_array_equal(
        np.asarray(Image.open(first)), load_image(src / "with_mask" / f"{first.stem}.jpg")
    )
    assert len(load_image_folder(tmp_path / "out" / "Train")) == 30, "the result loads as a dataset"
    again = prepare(src, tmp_path / "again", test_fraction=0.25, seed=3, progress=False)
    assert again.counts == report.counts
    assert sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*.png")) == sorted(
        p.relative_to(tmp_path / "out") for p in written
    ), "same seed, same split"


def test_prepare_keeps_given_splits_and_names_like_the_dataset(tmp_path: Path) -> None:
    make_photos(tmp_path / "src" / "train", per_class=4)
    make_photos(tmp_path / "src" / "TEST", per_class=2, start=50)
    photo(True, 7).save(tmp_path / "src" / "train" / "with_mask" / "0.png")  # same stem as 0.jpg
    report = prepare(tmp_path / "src", tmp_path / "out", progress=False)
    assert report.counts[("Train", "WithMask")] == 5 and report.counts[("Test", "WithoutMask")] == 2
    names = sorted(p.name for p in (tmp_path / "out" / "Train" / "WithMask").iterdir())
    assert names == ["0.png", "0_1.png", "1.png", "2.png", "3.png"], "sorted order: 0.jpg, then 0.png -> 0_1"


def test_exact_duplicates_stay_on_one_side(tmp_path: Path) -> None:
    src = make_photos(tmp_path / "src", per_class=12)
    for i in range(6):  # the same face saved again under other names and formats
        photo(True, 100 + i).save(src / "with_mask" / f"copy{i}.png")
    prepare(src, tmp_path / "out", test_fraction=0.3, seed=0, progress=False)
    digests = {
        split: {load_image(p).tobytes() for p in (tmp_path / "out" / split).rglob("*.png")}
        for split in ("Train", "Test")
    }
    assert digests["Train"] and digests["Test"] and not digests["Train"] & digests["Test"]


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "CMYK", "I;16", "1"])
def test_every_colour_mode_becomes_sensible_grayscale(tmp_path: Path, mode: str) -> None:
    rgb = photo(True, 0)
    image = (
        Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
        if mode == "I;16"
        else rgb.convert(mode)
    )
    path = tmp_path / ("face.tif" if mode in ("CMYK", "I;16") else "face.png")
    image.save(path)
    gray = load_image(path)
    reference = load_image(_saved(rgb, tmp_path / "rgb.png"))
    assert gray.shape == (28, 28) and gray.dtype == np.uint8
    assert np.abs(gray.astype(int) - reference).mean() < (70 if mode == "1" else 12), (
        f"{mode} kept the picture"
    )


def test_exif_orientation_and_formats(tmp_path: Path) -> None:
    rgb = photo(True, 1, size=(60, 100))
    rotated = rgb.transpose(Image.Transpose.ROTATE_90)  # stored sideways, EXIF says: turn it back
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90° clockwise to view
    rotated.save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    upright = load_image(_saved(rgb, tmp_path / "upright.jpg"))
    assert np.abs(load_image(tmp_path / "sideways.jpg").astype(int) - upright).mean() < 6
    for suffix in ("webp", "bmp", "png"):
        assert load_image(_saved(rgb, tmp_path / f"face.{suffix}")).shape == (28, 28)


def _saved(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def test_unreadable_files_are_reported_and_the_rest_written(tmp_path: Path) -> None:
    src = make_photos(tmp_path / "src", per_class=8)
    (src / "with_mask" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (src / "without_mask" / "readme.txt").write_text("not a photo")
    report = prepare(src, tmp_path / "out", progress=False)
    assert sum(report.counts.values()) == 16
    assert len(report.unreadable) == 2 and "broken.jpg" in report.unreadable[0]
    assert any(line.startswith("unreadable: ") and "readme.txt" in line for line in report.lines())


def test_prepare_refuses_bad_layouts_and_leaves_nothing(tmp_path: Path) -> None:
    src = make_photos(tmp_path / "src", per_class=3)
    (src / "maybe").mkdir()
    with pytest.raises(DatasetError, match="unknown class folder"):
        prepare(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["src"]
    (src / "maybe").rmdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(DatasetError, match="already exists and is not empty"):
        prepare(src, tmp_path / "full", progress=False)
    with pytest.raises(DatasetError, match="source folder not found"):
        prepare(tmp_path / "nowhere", tmp_path / "out2", progress=False)
