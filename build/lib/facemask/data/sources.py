"""What training learns from besides the split's 28x28 images, as components the data module composes:

- ``TrainPhotos``: the training part re-made from its full-size photos, framed by the face detector
  (``data.framing``) and with masks drawn on its own faces (``data/synthetic``);
- ``RealPhotos``: labelled real photos (``data.real_photos``), each face cut as deployment cuts it;
- ``Synthesis``: masks drawn on faces of full-size photos, for either of them.

Detection and drawing are cached (``data.cache_dir``), so every variant after the first costs little.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only

from facemask.data.cache import cached
from facemask.data.folder import DatasetError, ImageSet
from facemask.data.photos import framed_faces, labelled_faces, largest_faces, photo_paths
from facemask.data.synthesize import VERSION, synthesize
from facemask.vision.crops import FaceCropper
from facemask.vision.faces import Face
from facemask.vision.images import open_image

log = logging.getLogger(__name__)
info_once = rank_zero_only(log.info)  # under DDP every process loads the data; one says so

#: Labelled full-size photos: a folder of class folders, or ``{photos: DIR, boxes: CSV}`` for annotated faces.
PhotoSpec = str | Mapping[str, str | None]

#: How training images are framed: as the dataset's photos, as the face detector's box plus margin
#: (what ``facemask detect`` feeds the classifier), or both (every training image twice).
FRAMINGS = ("dataset", "detector", "both")


def photo_folder(spec: PhotoSpec | None) -> Path | None:
    """The photo folder a spec names (None where the spec is)."""
    if spec is None:
        return None
    return Path(spec if isinstance(spec, str) else spec["photos"])


def spec_faces(
    spec: PhotoSpec, cache_dir: str | None = None, skip_bad_files: bool = False
) -> list[tuple[Path, int, Face]]:
    """(photo, class index, detected face) of each labelled face of a photo spec (``photos.labelled_faces``)."""
    photos, boxes = (spec, None) if isinstance(spec, str) else (spec["photos"], spec.get("boxes"))
    return labelled_faces(photos, boxes, cache_dir, skip_bad_files)


@dataclass(frozen=True)
class Synthesis:
    """Masks (and, if asked, hands, beards, scarves) drawn on faces of full-size photos: the options of
    ``data/synthetic`` less ``real_faces``; ``photos`` names the drawn images."""

    options: Mapping[str, Any]
    cache_dir: str | None = None
    photos: str | None = None

    def draw(
        self,
        paths: Sequence[Path | None],
        faces: Sequence[Face | None],
        labels: list[int],
        margins: list[float | None],
    ) -> ImageSet:
        def draw() -> np.ndarray:  # one array for the cache: each row a flattened image and its label
            images, new_labels = synthesize(paths, faces, labels, margins=margins, **self.options)
            return np.concatenate(
                [images.reshape(len(images), 28 * 28), new_labels[:, None].astype(np.uint8)], 1
            )

        key = [paths, labels, self.options, margins, VERSION, [face and face.box for face in faces]]
        rows = cached(self.cache_dir, "synthetic", key, draw)
        new_labels = torch.from_numpy(rows[:, -1].astype(np.int64))
        info_once(
            "synthetic faces: %d with a mask, %d without", int(new_labels.sum()), int((new_labels == 0).sum())
        )
        return ImageSet(
            torch.from_numpy(rows[:, :-1].reshape(-1, 1, 28, 28).copy()),
            new_labels,
            [Path(self.photos or "") / "synthetic" / f"{i}.png" for i in range(len(rows))],
        )


@dataclass(frozen=True)
class TrainPhotos:
    """The training part re-made from its full-size ``photos`` where asked: framed by the face detector with
    ``margin`` (``framing``), plus masks drawn on its own faces (``synthesis``). Validation and Test faces
    are never drawn on."""

    photos: str | None
    framing: str = "dataset"
    margin: float = 0.0
    synthesis: Synthesis | None = None
    cache_dir: str | None = None
    skip_bad_files: bool = False

    def build(self, train: ImageSet) -> ImageSet:
        if self.synthesis is None and self.framing == "dataset":
            return train
        photos = Path(self.photos or "none")  # not "": that would be the working directory
        if not photos.is_dir():
            raise DatasetError(
                f"{photos}: full-size training photos not found (data.photos); "
                "data/synthetic and data.framing=detector|both draw on them"
            )
        paths = photo_paths(photos, train)
        faces = largest_faces(paths, self.cache_dir, self.skip_bad_files)
        margins = {"dataset": [None], "detector": [self.margin], "both": [None, self.margin]}[self.framing]
        parts = [train] if None in margins else []
        if self.margin in margins:
            parts.append(self._detector_framed(train, paths, faces))
        if self.synthesis is not None:
            parts.append(self.synthesis.draw(paths, faces, train.labels.tolist(), margins))
        return ImageSet.concat(parts)

    def _detector_framed(
        self, train: ImageSet, paths: list[Path | None], faces: list[Face | None]
    ) -> ImageSet:
        """Each training image cut from its photo like ``facemask detect`` cuts a face (where one was found)."""
        cropper = FaceCropper(margin=self.margin)
        reframed = cached(
            self.cache_dir,
            "framed",
            [paths, cropper.margin],
            lambda: np.stack(
                [
                    cropper.crop(open_image(path), face) if path and face else image[0].numpy()
                    for path, face, image in zip(paths, faces, train.images, strict=True)
                ]
            ),
        )
        info_once("detector-framed training images: %d of %d", sum(f is not None for f in faces), len(train))
        return ImageSet(torch.from_numpy(reframed).unsqueeze(1), train.labels, train.paths)


@dataclass(frozen=True)
class RealPhotos:
    """Labelled real photos added to training: each face cut with each of ``margins`` (the deployment
    margin, and framings other sources crop faces with), ``repeat`` times (they are a small share of the
    training part); with ``synthesis``, masks are also drawn on their bare faces."""

    photos: Mapping[str, PhotoSpec | None]
    margins: Sequence[float]
    repeat: int = 1
    synthesis: Synthesis | None = None
    cache_dir: str | None = None
    skip_bad_files: bool = False

    def build(self) -> list[ImageSet]:
        margins, parts = list(self.margins), []
        for name, spec in self.photos.items():
            folder = photo_folder(spec)
            if folder is None or not folder.is_dir():
                raise DatasetError(f"{folder}: real training photos not found (data.real_photos.{name})")
            found = spec_faces(spec, self.cache_dir, self.skip_bad_files)
            info_once(
                "real training faces %s: %d with a mask, %d without (margins %s, each seen %d times an epoch)",
                name,
                sum(label for _, label, _ in found),
                sum(label == 0 for _, label, _ in found),
                margins,
                self.repeat,
            )
            parts += [framed_faces(found, margin) for margin in margins] * self.repeat
            if self.synthesis is not None:
                bare = [(path, face) for path, label, face in found if label == 0 and face.landmarks]
                paths, faces = [path for path, _ in bare], [face for _, face in bare]
                parts.append(self.synthesis.draw(paths, faces, [0] * len(bare), margins))
        return parts
