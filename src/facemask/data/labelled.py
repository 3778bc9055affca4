"""Labelled faces on disk, each set a component of ``conf/data`` (``_target_``): what the data module trains,
validates and tests on besides the dataset's own split.

- ``Photos``: full-size photos, class folders or annotated faces (a boxes CSV), each face cut as
  ``facemask detect`` cuts it;
- ``Crops``: face crops (class folders, or one class), framed the way deployment frames a face (``data/crops.py``);
- ``DatasetFolder``: a set in the dataset's own format (28x28 gray, realworld/mask28), at another input spec
  re-made from its full-size photos.

Every set is made at a ``Context``: the model's input spec and deployment margin (which the data module owns
and the model records), and where detections and drawn images are cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from facemask.data.crops import class_of, framed_crops
from facemask.data.folder import ImageSet, load_image_folder
from facemask.data.photos import at_spec, framed_faces, labelled_faces, photo_paths
from facemask.data.root import missing
from facemask.vision.crops import DEFAULT_MARGIN
from facemask.vision.faces import Face
from facemask.vision.spec import DEFAULT_SPEC, InputSpec


@dataclass(frozen=True)
class Context:
    """What every source and set is made with: the data module's settings. ``photos`` are the full-size
    originals of the dataset's Train (``data.photos``); ``real_margins`` and ``real_repeat`` are how real
    training faces are cut and repeated where a source does not say (``data.real_margins``,
    ``data.real_repeat``): one policy for every real source, whichever config group added it."""

    spec: InputSpec = DEFAULT_SPEC
    margin: float = DEFAULT_MARGIN
    cache_dir: str | None = None
    skip_bad_files: bool = False
    real_margins: Sequence[float] | None = None
    real_repeat: int = 1
    photos: str | None = None


class EvalSet(Protocol):
    """A named evaluation set (``data.val_sets``, ``data.test_sets``, ``data.mask_rate_sets``): its folder (a
    missing one is skipped), and its faces at a context."""

    @property
    def folder(self) -> str | Path: ...

    def images(self, ctx: Context) -> ImageSet: ...


@dataclass(frozen=True, kw_only=True)
class Photos:
    """Labelled full-size photos: ``photos`` holds class folders (each photo's largest face is its label's),
    or with ``boxes`` (a CSV), annotated faces; the faces the detector misses are counted and left out."""

    photos: str
    boxes: str | None = None

    @property
    def folder(self) -> Path:
        return Path(self.photos)

    def faces(self, ctx: Context) -> list[tuple[Path, int, Face]]:
        """(photo, class index, detected face) of each labelled face."""
        return labelled_faces(self.photos, self.boxes, ctx.cache_dir, ctx.skip_bad_files)

    def cut(
        self, margins: Sequence[float], ctx: Context, found: list[tuple[Path, int, Face]] | None = None
    ) -> list[ImageSet]:
        """Every face cut with each of ``margins``, at the input spec (``found``: its ``faces``, where the
        caller has them already)."""
        found = self.faces(ctx) if found is None else found
        return [framed_faces(found, margin, ctx.spec) for margin in margins]

    def images(self, ctx: Context) -> ImageSet:
        """The faces as deployment cuts them: an evaluation set."""
        return self.cut([ctx.margin], ctx)[0]


@dataclass(frozen=True, kw_only=True)
class Crops:
    """Face crops: ``crops`` holds class folders, or with ``label`` is all of that class. Where the detector
    misses the face in a crop, the crop itself is the face box (``fallback``) or it is left out."""

    crops: str
    label: str | None = None
    fallback: bool = True

    @property
    def folder(self) -> Path:
        return Path(self.crops)

    def cut(self, margins: Sequence[float], ctx: Context) -> list[ImageSet]:
        """Every crop framed with each of ``margins``, at the input spec."""
        label = None if self.label is None else class_of(self.label, self.folder)
        return [
            framed_crops(
                self.crops, margin, label, self.fallback, ctx.cache_dir, ctx.skip_bad_files, ctx.spec
            )
            for margin in margins
        ]

    def images(self, ctx: Context) -> ImageSet:
        """The crops as deployment frames a face: an evaluation set."""
        return self.cut([ctx.margin], ctx)[0]


@dataclass(frozen=True, kw_only=True)
class DatasetFolder:
    """A set in the dataset's format (an ImageFolder of 28x28 gray images, realworld/mask28): as it is at
    28 / 1; at another spec re-made from its full-size ``photos`` (same class folders and stems), or without
    them, its own images converted."""

    folder: str
    photos: str | None = None

    def images(self, ctx: Context) -> ImageSet:
        if self.photos is None:
            return load_image_folder(self.folder, ctx.skip_bad_files, ctx.spec)
        return remade(load_image_folder(self.folder, ctx.skip_bad_files), self.photos, ctx)


def remade(images: ImageSet, photos: str | Path | None, ctx: Context) -> ImageSet:
    """A dataset's images at the input spec: as they are at 28 / 1, else each re-made from its full-size photo
    in ``photos`` (data.photos, data.test_photos, a DatasetFolder's photos)."""
    if ctx.spec == DEFAULT_SPEC:
        return images
    if photos is None or not Path(photos).is_dir():
        raise missing(photos or "data.photos", "the dataset's full-size photos, to make it at the input spec")
    return at_spec(images, photo_paths(photos, images), ctx.spec, ctx.cache_dir)
