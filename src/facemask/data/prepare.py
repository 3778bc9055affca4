"""``facemask data prepare SRC DST``: any folder of face photos -> the 28x28 grayscale Train/Test layout.

Reproduces how ../shared/data/mask28 was made (../shared/README.md), byte for byte: each file, in sorted
order, decoded with EXIF orientation applied, converted to grayscale, Lanczos-resized to 28x28 (aspect not
kept) and saved as an optimized PNG (with the photo's ICC profile, if any) under its own stem (a second file with the same stem in the same folder gets ``_1``).
Splits found in SRC (``train``/``test``) are kept; otherwise a seeded stratified split in which exact
duplicates (same pixels after conversion) stay on one side. DST appears whole or not at all.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import track

from facemask.data.folder import CLASSES, DatasetError, class_folders
from facemask.vision.images import ImageError, load_image
from facemask.vision.spec import DEFAULT_SPEC, InputSpec

SPLITS = ("Train", "Test")
DEFAULT_TEST_FRACTION = 0.13  # the case study's 194 of 1509


@dataclass
class Photo:
    source: Path
    label: int
    split: str | None  # as found in SRC, or None until split
    pixels: np.ndarray | None = None
    icc_profile: bytes | None = None  # kept in the PNG, as the team's conversion kept it

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.pixels.tobytes()).hexdigest()


@dataclass
class Report:
    counts: Counter = field(default_factory=Counter)  # (split, class name) -> images written
    unreadable: list[str] = field(default_factory=list)
    duplicates_across_splits: int = 0  # only where SRC's own splits put the same pixels on both sides

    def lines(self) -> list[str]:
        rows = [
            f"{split:5s} " + "  ".join(f"{name} {self.counts[split, name]}" for name in reversed(CLASSES))
            for split in SPLITS
        ]
        if self.duplicates_across_splits:
            rows.append(
                f"warning: {self.duplicates_across_splits} images of SRC's Test also stand in its Train (kept as given)"
            )
        rows += [f"unreadable: {message}" for message in self.unreadable]
        return rows


def split_folders(src: Path) -> dict[str | None, Path]:
    """``{"Train": ..., "Test": ...}`` where SRC has train/test folders (any case), else ``{None: src}``."""
    found = {
        name: path
        for path in src.iterdir()
        if path.is_dir()
        for name in SPLITS
        if path.name.lower() == name.lower()
    }
    if not found:
        return {None: src}
    if set(found) != set(SPLITS):
        raise DatasetError(
            f"{src}: has {'/'.join(p.name for p in found.values())} but not both train and test folders"
        )
    return found


def find_photos(src: Path) -> list[Photo]:
    if not src.is_dir():
        raise DatasetError(f"{src}: source folder not found")
    photos = []
    for split, root in split_folders(src).items():
        for label, folder in class_folders(root).items():
            files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
            photos += [Photo(path, label, split) for path in files]
    return photos


def assign_splits(photos: list[Photo], test_fraction: float, seed: int) -> None:
    """Per class, whole groups of identical images go to Test until it holds ``test_fraction``."""
    rng = random.Random(seed)
    for label in range(len(CLASSES)):
        groups: dict[str, list[Photo]] = defaultdict(list)
        for photo in photos:
            if photo.label == label:
                groups[photo.digest].append(photo)
        keys = sorted(groups)
        rng.shuffle(keys)
        target, taken = round(test_fraction * sum(map(len, groups.values()))), 0
        for key in keys:
            split = "Test" if taken < target else "Train"
            taken += len(groups[key]) if split == "Test" else 0
            for photo in groups[key]:
                photo.split = split


def output_names(photos: list[Photo]) -> list[str]:
    """``stem.png``; the second file with a stem in the same folder ``stem_1.png`` and so on."""
    seen: Counter = Counter()
    names = []
    for photo in photos:
        key = (photo.split, photo.label, photo.source.stem)
        names.append(photo.source.stem + (f"_{seen[key]}" if seen[key] else "") + ".png")
        seen[key] += 1
    return names


def prepare(
    src: str | Path,
    dst: str | Path,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
    progress: bool = True,
    spec: InputSpec = DEFAULT_SPEC,
) -> Report:
    """Convert SRC into DST (which must not exist yet); unreadable files are reported, not fatal."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise DatasetError(f"{dst}: already exists and is not empty; choose a new destination")
    report, readable = Report(), []
    for photo in track(find_photos(src), description="converting", disable=not progress, transient=True):
        try:
            photo.pixels = load_image(photo.source, spec)
            with Image.open(photo.source) as image:
                photo.icc_profile = image.info.get("icc_profile")
            readable.append(photo)
        except ImageError as err:
            report.unreadable.append(str(err))
    if any(photo.split is None for photo in readable):
        assign_splits(readable, test_fraction, seed)
    else:
        train = {photo.digest for photo in readable if photo.split == "Train"}
        report.duplicates_across_splits = sum(
            photo.digest in train for photo in readable if photo.split == "Test"
        )
    for split in {photo.split for photo in readable} | {"Train"}:  # Test may be empty: --test-fraction 0
        for label, name in enumerate(CLASSES):
            if not any(photo.split == split and photo.label == label for photo in readable):
                raise DatasetError(f"{src}: no readable {name} images for {split}")
    write_atomically(readable, dst)
    report.counts.update((photo.split, CLASSES[photo.label]) for photo in readable)
    return report


def write_atomically(photos: list[Photo], dst: Path) -> None:
    """Write into a temporary sibling folder, then rename it to DST: never a half-written dataset."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        for photo, name in zip(photos, output_names(photos), strict=True):
            folder = staging / photo.split / CLASSES[photo.label]
            folder.mkdir(parents=True, exist_ok=True)
            extra = {"icc_profile": photo.icc_profile} if photo.icc_profile else {}
            Image.fromarray(photo.pixels).save(folder / name, optimize=True, **extra)  # the team's bytes
        if dst.exists():
            dst.rmdir()  # empty, checked above
        os.replace(staging, dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
