"""An ImageFolder split (``WithMask/``, ``WithoutMask/``) decoded once into memory.

The whole dataset is a few MB, so every image is decoded a single time into one uint8 tensor;
training then never touches the disk or PIL again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facemask.errors import DatasetError
from facemask.vision.images import ImageError, load_image
from facemask.vision.spec import DEFAULT_SPEC, InputSpec

log = logging.getLogger(__name__)

#: Class index by name, fixed rather than alphabetical: WithMask is the positive class (1) for
#: precision and recall, because a mask is what the bank must recognise.
CLASSES = ("WithoutMask", "WithMask")
POSITIVE_CLASS = 1


def class_index(folder_name: str) -> int | None:
    """Index for ``WithMask``/``with_mask``/``with-mask`` style names, None for anything else."""
    key = folder_name.lower().replace("_", "").replace("-", "")
    return {name.lower(): index for index, name in enumerate(CLASSES)}.get(key)


@dataclass
class ImageSet:
    """Decoded images of one split: ``images`` uint8 (N, 1, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    paths: list[Path]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices], [self.paths[i] for i in indices.tolist()])

    @staticmethod
    def concat(parts: list[ImageSet]) -> ImageSet:
        if len(parts) == 1:
            return parts[0]
        return ImageSet(
            torch.cat([part.images for part in parts]),
            torch.cat([part.labels for part in parts]),
            [path for part in parts for path in part.paths],
        )

    def class_balanced(self) -> ImageSet:
        """The images of the smaller class repeated (a whole number of times) to match the larger one."""
        counts = torch.bincount(self.labels, minlength=len(CLASSES))
        if counts.min() == 0:
            return self
        small = int(counts.argmin())
        times = round(int(counts.max()) / int(counts.min()))
        extra = (self.labels == small).nonzero().flatten().repeat(times - 1)
        return ImageSet.concat([self, self.subset(extra)]) if len(extra) else self

    def balanced(self, count: int) -> ImageSet:
        """The first ``count // 2`` images of each class, WithMask first: a fixed sheet of examples."""
        per_class = [(self.labels == c).nonzero().flatten()[: count // 2] for c in (POSITIVE_CLASS, 0)]
        return self.subset(torch.cat(per_class))

    def floats(self) -> torch.Tensor:
        """The images as floats in [0, 1], the model's input."""
        return self.images.float() / 255


def class_folders(root: Path) -> dict[int, Path]:
    """Map class index -> folder under ``root``; unknown, missing and duplicate classes are errors."""
    if not root.is_dir():
        raise DatasetError(f"{root}: split folder not found")
    folders: dict[int, Path] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        index = class_index(folder.name)
        if index is None:
            raise DatasetError(f"{folder}: unknown class folder (expected {' and '.join(CLASSES)})")
        if index in folders:
            raise DatasetError(
                f"{root}: both {folders[index].name}/ and {folder.name}/ hold {CLASSES[index]}"
            )
        folders[index] = folder
    for index, name in enumerate(CLASSES):
        if index not in folders:
            raise DatasetError(f"{root}: class folder {name}/ (or {_snake(name)}/) is missing")
    return folders


def load_image_folder(
    root: str | Path, skip_bad_files: bool = False, spec: InputSpec = DEFAULT_SPEC
) -> ImageSet:
    """Decode every image under ``root/<class>/`` at the input ``spec``; bad files stop it, all named at once
    (one fix, not one run per file), unless skipped."""
    root = Path(root)
    images, labels, paths, unreadable = [], [], [], []
    for index, folder in class_folders(root).items():
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DatasetError(f"{folder}: class folder is empty")
        for path in files:
            try:
                images.append(load_image(path, spec))
            except ImageError as err:
                unreadable.append(str(err))
                continue
            labels.append(index)
            paths.append(path)
    if unreadable and not skip_bad_files:
        if len(unreadable) == 1:
            raise ImageError(unreadable[0])
        raise ImageError(
            f"{root}: {len(unreadable)} unreadable image files (data.skip_bad_files=true skips them):\n  "
            + "\n  ".join(unreadable)
        )
    if unreadable:
        log.warning(
            "skipped %d unreadable file(s) under %s:\n  %s", len(unreadable), root, "\n  ".join(unreadable)
        )
    for index, name in enumerate(CLASSES):
        if index not in labels:
            raise DatasetError(f"{root}: no readable images of class {name}")
    return ImageSet(
        images=torch.from_numpy(spec.channels_first(np.stack(images))),
        labels=torch.tensor(labels, dtype=torch.long),
        paths=paths,
    )


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
