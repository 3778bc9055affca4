"""What training learns from, each source a component of ``conf/data`` (``_target_``) in ``data.sources``:

- ``DatasetFaces``: the split's training part, as the dataset gives it or re-made from its full-size photos,
  framed by the face detector (``framing``) and with masks drawn on its own faces (``synthesis``);
- ``RealPhotos``, ``RealCrops``: labelled real faces (``data/labelled.py``) in training, cut as deployment cuts
  them with each of the real margins, repeated or drawn afresh each epoch (``per_epoch``);
- ``Synthesis``: masks (and, if asked, hands, beards, scarves) drawn on faces of full-size photos, for either.

Sources are a dict, not a list: Hydra merges dicts across config groups (``data/real=[realmasks,realfaces]``
each adds its own), and the name is the source's name in the log and in ``train_sizes``. Detection and drawing
are cached (``data.cache_dir``), keyed as before the sources were configs, so every variant after the first
costs little.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only

from facemask.data.cache import cached
from facemask.data.folder import ImageSet
from facemask.data.labelled import Context, Crops, Photos, remade
from facemask.data.photos import largest_faces, photo_paths
from facemask.data.root import missing
from facemask.data.synthesize import KINDS, SHADES, VERSION, synthesize
from facemask.errors import FacemaskError
from facemask.vision.crops import FaceCropper, check_margin
from facemask.vision.faces import Face
from facemask.vision.images import open_image
from facemask.vision.spec import DEFAULT_SPEC, spec_key

log = logging.getLogger(__name__)
info_once = rank_zero_only(log.info)  # under DDP every process loads the data; one says so

#: How the dataset's training images are framed: as the dataset's photos, as the face detector's box plus
#: margin (what ``facemask detect`` feeds the classifier), or both (every training image twice).
FRAMINGS = ("dataset", "detector", "both")


class TrainSource(Protocol):
    """A training source: its images for this run, and how many of them an epoch draws (None: all)."""

    per_epoch: int | None

    def build(self, ctx: Context, split: ImageSet) -> ImageSet: ...

    def check(self, key: str) -> None: ...


def check_count(value: object, key: str) -> None:
    """A count in a config (repeat, per_epoch) is a whole number >= 1."""
    if not (isinstance(value, int) and value >= 1):
        raise FacemaskError(f"{key}={value!r}: expected a whole number >= 1")


@dataclass(frozen=True, kw_only=True)
class Synthesis:
    """Masks drawn on faces of full-size photos (``data/synthetic=masks``): ``per_face`` new masks on each bare
    face, ``reshaded`` re-shaded copies of each pasted mask, ``occluded`` hands, beards or scarves on each bare
    face (as WithoutMask), kind and shade drawn from ``kinds`` and ``shades``."""

    kinds: Sequence[str] = KINDS
    shades: Sequence[str] = SHADES
    per_face: int = 1
    reshaded: int = 0
    occluded: int = 0
    seed: int = 0

    def draw(
        self,
        paths: Sequence[Path | None],
        faces: Sequence[Face | None],
        labels: list[int],
        margins: list[float | None],
        ctx: Context,
        origin: str | Path,
    ) -> ImageSet:
        """The drawn faces, framed by each of ``margins`` (None: the whole photo), at the input spec; their
        paths name ``origin``, the folder drawn from."""
        spec, options = ctx.spec, asdict(self)

        def draw() -> np.ndarray:  # one array for the cache: each row a flattened face and its label
            images, new_labels = synthesize(paths, faces, labels, margins=margins, spec=spec, **options)
            flat = spec.channels_first(images).reshape(len(images), int(np.prod(spec.tensor_shape)))
            return np.concatenate([flat, new_labels[:, None].astype(np.uint8)], 1)

        key = [paths, labels, options, margins, VERSION, [face and face.box for face in faces]]
        rows = cached(ctx.cache_dir, "synthetic", [*key, *spec_key(spec)], draw)
        new_labels = torch.from_numpy(rows[:, -1].astype(np.int64))
        info_once(
            "synthetic faces: %d with a mask, %d without", int(new_labels.sum()), int((new_labels == 0).sum())
        )
        return ImageSet(
            torch.from_numpy(rows[:, :-1].reshape(-1, *spec.tensor_shape).copy()),
            new_labels,
            [Path(origin) / "synthetic" / f"{i}.png" for i in range(len(rows))],
        )


@dataclass(frozen=True, kw_only=True)
class DatasetFaces:
    """The split's training part: re-made from its full-size photos (``data.photos``) where asked, framed by the face
    detector with the deployment margin (``framing``), plus masks drawn on its own faces (``synthesis``); with
    ``balance``, its bare faces repeated to match the masks that synthesis adds. Validation and Test faces are
    never drawn on."""

    framing: str = "dataset"
    synthesis: Synthesis | None = None
    balance: bool = False
    per_epoch: int | None = None

    def check(self, key: str) -> None:
        if self.framing not in FRAMINGS:
            raise FacemaskError(f"{key}.framing={self.framing!r}: expected one of {', '.join(FRAMINGS)}")
        if self.per_epoch is not None:
            check_count(self.per_epoch, f"{key}.per_epoch")

    def build(self, ctx: Context, split: ImageSet) -> ImageSet:
        images = self._framed(ctx, split)
        return images.class_balanced() if self.balance else images

    def _framed(self, ctx: Context, train: ImageSet) -> ImageSet:
        if self.synthesis is None and self.framing == "dataset" and ctx.spec == DEFAULT_SPEC:
            return train
        photos = Path(ctx.photos or "none")  # not "": that would be the working directory
        if not photos.is_dir():
            raise missing(photos, "full-size training photos (data.photos)")
        paths = photo_paths(photos, train)
        margins = {"dataset": [None], "detector": [ctx.margin], "both": [None, ctx.margin]}[self.framing]
        parts = [remade(train, photos, ctx)] if None in margins else []
        if ctx.margin not in margins and self.synthesis is None:
            return ImageSet.concat(parts)
        faces = largest_faces(paths, ctx.cache_dir, ctx.skip_bad_files)
        if ctx.margin in margins:
            parts.append(self._detector_framed(ctx, train, paths, faces))
        if self.synthesis is not None:
            parts.append(self.synthesis.draw(paths, faces, train.labels.tolist(), margins, ctx, photos))
        return ImageSet.concat(parts)

    def _detector_framed(
        self, ctx: Context, train: ImageSet, paths: list[Path | None], faces: list[Face | None]
    ) -> ImageSet:
        """Each training image cut from its photo like ``facemask detect`` cuts a face (where one was found)."""
        cropper, spec = FaceCropper(margin=ctx.margin, spec=ctx.spec), ctx.spec
        whole = remade(train, ctx.photos, ctx)  # where no face was found: the image in the dataset's framing
        reframed = cached(
            ctx.cache_dir,
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


@dataclass(frozen=True, kw_only=True)
class RealFaces:
    """How training takes a set of labelled real faces: each cut with each of ``margins`` (default: the data
    module's ``real_margins``, else the deployment margin), ``repeat`` times an epoch (default: its
    ``real_repeat``), or ``per_epoch`` of them drawn afresh each epoch (``data/draws.py``)."""

    margins: Sequence[float] | None = None
    repeat: int | None = None
    per_epoch: int | None = None

    def check(self, key: str) -> None:
        for margin in self.margins or ():
            check_margin(margin, f"{key}.margins={list(self.margins)}")
        for what in ("repeat", "per_epoch"):
            if getattr(self, what) is not None:
                check_count(getattr(self, what), f"{key}.{what}")

    def cut(self, margins: Sequence[float], ctx: Context) -> list[ImageSet]:
        raise NotImplementedError  # Photos or Crops: the faces themselves

    def build(self, ctx: Context, split: ImageSet) -> ImageSet:
        return ImageSet.concat(self.cut(self._margins(ctx), ctx) * self._repeat(ctx))

    def _margins(self, ctx: Context) -> list[float]:
        return list(self.margins or ctx.real_margins or [ctx.margin])

    def _repeat(self, ctx: Context) -> int:
        return self.repeat or ctx.real_repeat


@dataclass(frozen=True, kw_only=True)
class RealCrops(Crops, RealFaces):
    """Face crops in training (``data/real=realfaces``, mined hard negatives)."""


@dataclass(frozen=True, kw_only=True)
class RealPhotos(Photos, RealFaces):
    """Labelled photos in training (``data/real=realmasks``); with ``synthesis``, masks are also drawn on
    their bare faces."""

    synthesis: Synthesis | None = None

    def build(self, ctx: Context, split: ImageSet) -> ImageSet:
        if self.synthesis is None:
            return super().build(ctx, split)
        found, margins = self.faces(ctx), self._margins(ctx)  # the faces once, for the cuts and the drawing
        bare = [(path, face) for path, label, face in found if label == 0 and face.landmarks]
        paths, faces = [path for path, _ in bare], [face for _, face in bare]
        drawn = self.synthesis.draw(paths, faces, [0] * len(bare), margins, ctx, self.photos)
        return ImageSet.concat([*self.cut(margins, ctx, found) * self._repeat(ctx), drawn])
