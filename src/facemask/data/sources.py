"""What training learns from besides the split's 28x28 images, as components the data module composes:

- ``TrainPhotos``: the training part re-made from its full-size photos, framed by the face detector
  (``data.framing``) and with masks drawn on its own faces (``data/synthetic``);
- ``RealFaces``: labelled real faces, photos (``data.real_photos``) or face crops (``data.real_crops``), each
  face cut as deployment cuts it;
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
from facemask.data.crops import crop_spec_label, framed_crops
from facemask.data.folder import DatasetError, ImageSet
from facemask.data.photos import at_spec, framed_faces, labelled_faces, largest_faces, photo_paths
from facemask.data.root import missing
from facemask.data.synthesize import VERSION, synthesize
from facemask.vision.crops import FaceCropper
from facemask.vision.faces import Face
from facemask.vision.images import open_image
from facemask.vision.spec import DEFAULT_SPEC, InputSpec, spec_key

log = logging.getLogger(__name__)
info_once = rank_zero_only(log.info)  # under DDP every process loads the data; one says so

#: Labelled real faces: full-size photos, a folder of class folders or ``{photos: DIR, boxes: CSV}`` for
#: annotated faces; or face crops, ``{crops: DIR}`` (class folders) or ``{crops: DIR, label: CLASS}`` (one class).
#: A spec in a mapping may add ``repeat`` (times an epoch) and ``per_epoch`` (images drawn from it each epoch).
PhotoSpec = str | Mapping[str, Any]

#: How training images are framed: as the dataset's photos, as the face detector's box plus margin
#: (what ``facemask detect`` feeds the classifier), or both (every training image twice).
FRAMINGS = ("dataset", "detector", "both")


def photo_folder(spec: PhotoSpec | None) -> Path | None:
    """The folder a spec names (None where the spec is)."""
    if spec is None:
        return None
    return Path(spec if isinstance(spec, str) else spec.get("crops") or spec["photos"])


def is_crops(spec: PhotoSpec) -> bool:
    """Whether a spec names face crops rather than photos."""
    return not isinstance(spec, str) and "crops" in spec


def spec_faces(
    spec: PhotoSpec, cache_dir: str | None = None, skip_bad_files: bool = False
) -> list[tuple[Path, int, Face]]:
    """(photo, class index, detected face) of each labelled face of a photo spec (``photos.labelled_faces``)."""
    photos, boxes = (spec, None) if isinstance(spec, str) else (spec["photos"], spec.get("boxes"))
    return labelled_faces(photos, boxes, cache_dir, skip_bad_files)


def spec_images(
    spec: PhotoSpec,
    margins: Sequence[float],
    cache_dir: str | None = None,
    skip_bad_files: bool = False,
    input_spec: InputSpec = DEFAULT_SPEC,
) -> list[ImageSet]:
    """Every labelled face of a spec, photos or crops, cut with each of ``margins`` as deployment cuts a face,
    at the model's input spec."""
    if is_crops(spec):
        fallback, label = spec.get("fallback", True), crop_spec_label(spec)
        return [
            framed_crops(spec["crops"], margin, label, fallback, cache_dir, skip_bad_files, input_spec)
            for margin in margins
        ]
    found = spec_faces(spec, cache_dir, skip_bad_files)
    return [framed_faces(found, margin, input_spec) for margin in margins]


@dataclass(frozen=True)
class Synthesis:
    """Masks (and, if asked, hands, beards, scarves) drawn on faces of full-size photos: the options of
    ``data/synthetic`` less ``real_faces``; ``photos`` names the drawn images; faces at ``input_spec``."""

    options: Mapping[str, Any]
    cache_dir: str | None = None
    photos: str | None = None
    input_spec: InputSpec = DEFAULT_SPEC

    def draw(
        self,
        paths: Sequence[Path | None],
        faces: Sequence[Face | None],
        labels: list[int],
        margins: list[float | None],
    ) -> ImageSet:
        spec = self.input_spec

        def draw() -> np.ndarray:  # one array for the cache: each row a flattened face and its label
            images, new_labels = synthesize(paths, faces, labels, margins=margins, spec=spec, **self.options)
            flat = spec.channels_first(images).reshape(len(images), int(np.prod(spec.tensor_shape)))
            return np.concatenate([flat, new_labels[:, None].astype(np.uint8)], 1)

        key = [paths, labels, self.options, margins, VERSION, [face and face.box for face in faces]]
        rows = cached(self.cache_dir, "synthetic", [*key, *spec_key(spec)], draw)
        new_labels = torch.from_numpy(rows[:, -1].astype(np.int64))
        info_once(
            "synthetic faces: %d with a mask, %d without", int(new_labels.sum()), int((new_labels == 0).sum())
        )
        return ImageSet(
            torch.from_numpy(rows[:, :-1].reshape(-1, *spec.tensor_shape).copy()),
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
    balance: bool = False
    input_spec: InputSpec = DEFAULT_SPEC

    def build(self, train: ImageSet) -> ImageSet:
        """The split's training part in every framing asked for, with its drawn masks; with ``balance``, its
        bare faces repeated to match the masks that synthesis adds (only masks: 4 to 1 in every framing)."""
        images = self._framed(train)
        return images.class_balanced() if self.balance else images

    def _framed(self, train: ImageSet) -> ImageSet:
        if self.synthesis is None and self.framing == "dataset" and self.input_spec == DEFAULT_SPEC:
            return train
        photos = Path(self.photos or "none")  # not "": that would be the working directory
        if not photos.is_dir():
            raise missing(photos, "full-size training photos (data.photos)")
        paths = photo_paths(photos, train)
        margins = {"dataset": [None], "detector": [self.margin], "both": [None, self.margin]}[self.framing]
        parts = [self._at_spec(train, paths)] if None in margins else []
        if self.margin not in margins and self.synthesis is None:
            return ImageSet.concat(parts)
        faces = largest_faces(paths, self.cache_dir, self.skip_bad_files)
        if self.margin in margins:
            parts.append(self._detector_framed(train, paths, faces))
        if self.synthesis is not None:
            parts.append(self.synthesis.draw(paths, faces, train.labels.tolist(), margins))
        return ImageSet.concat(parts)

    def _detector_framed(
        self, train: ImageSet, paths: list[Path | None], faces: list[Face | None]
    ) -> ImageSet:
        """Each training image cut from its photo like ``facemask detect`` cuts a face (where one was found)."""
        cropper, spec = FaceCropper(margin=self.margin, spec=self.input_spec), self.input_spec
        whole = self._at_spec(train, paths)  # where no face was found: the image in the dataset's framing
        reframed = cached(
            self.cache_dir,
            "framed",
            [paths, cropper.margin, *spec_key(spec)],
            lambda: np.stack(
                [
                    cropper.crop(open_image(path), face)
                    if path and face
                    else spec.faces(image[None].numpy())[0]
                    for path, face, image in zip(paths, faces, whole.images, strict=True)
                ]
            ),
        )
        info_once("detector-framed training images: %d of %d", sum(f is not None for f in faces), len(train))
        return ImageSet(torch.from_numpy(spec.channels_first(reframed)), train.labels, train.paths)

    def _at_spec(self, train: ImageSet, paths: list[Path | None]) -> ImageSet:
        """The dataset's own framing (the whole photo) at the input spec: at 28 / 1 the images as they are,
        else each re-made from its full-size photo (``photos``)."""
        return at_spec(train, paths, self.input_spec, self.cache_dir)


@dataclass(frozen=True)
class RealFaces:
    """Labelled real faces added to training, photos or crops (``specs``: name -> ``PhotoSpec``): each face cut
    with each of ``margins`` (the deployment margin, and framings other sources crop faces with), ``repeat``
    times an epoch (a spec's own ``repeat`` first); with ``synthesis``, masks are also drawn on the bare faces
    of photos."""

    specs: Mapping[str, PhotoSpec | None]
    margins: Sequence[float]
    repeat: int = 1
    synthesis: Synthesis | None = None
    cache_dir: str | None = None
    skip_bad_files: bool = False
    input_spec: InputSpec = DEFAULT_SPEC

    def build(self) -> dict[str, ImageSet]:
        """One training source per spec."""
        margins, sources = list(self.margins), {}
        for name, spec in self.specs.items():
            folder = photo_folder(spec)
            if folder is None or not folder.is_dir():
                kind = "crops" if spec is not None and is_crops(spec) else "photos"
                raise missing(folder, f"real training {kind} (data.real_{kind}.{name})")
            options = spec if isinstance(spec, Mapping) else {}
            repeat, per_epoch = options.get("repeat", self.repeat), options.get("per_epoch")
            for key, value in (("repeat", repeat), ("per_epoch", per_epoch or 1)):
                if not (isinstance(value, int) and value >= 1):
                    raise DatasetError(f"data.real_*.{name}.{key}={value!r}: expected a whole number >= 1")
            parts = spec_images(spec, margins, self.cache_dir, self.skip_bad_files, self.input_spec)
            info_once(
                "real training faces %s: %d with a mask, %d without (margins %s, %s)",
                name,
                int(parts[0].labels.sum()),
                int((parts[0].labels == 0).sum()),
                margins,
                f"{per_epoch} images drawn an epoch" if per_epoch else f"each seen {repeat} times an epoch",
            )
            parts *= repeat
            if self.synthesis is not None and not is_crops(spec):
                found = spec_faces(spec, self.cache_dir, self.skip_bad_files)
                bare = [(path, face) for path, label, face in found if label == 0 and face.landmarks]
                paths, faces = [path for path, _ in bare], [face for _, face in bare]
                parts.append(self.synthesis.draw(paths, faces, [0] * len(bare), margins))
            sources[name] = ImageSet.concat(parts)
        return sources
