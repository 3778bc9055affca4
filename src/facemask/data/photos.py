"""The full-size photos behind the 28x28 training images, and the face the detector finds in each.

Mask synthesis and detector-framed training both start from ``../shared/data/train-photos``
(``WithMask/`` and ``WithoutMask/``, the originals of mask28/Train under the same stems). Detection
runs once per set of photos and is cached, so that every variant after the first costs only drawing.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.progress import track

from facemask.data.cache import cached
from facemask.data.folder import DatasetError, ImageSet, class_folders, class_index
from facemask.data.root import missing
from facemask.vision.crops import DETECTOR_FILL, FaceCropper, largest, pad_crop
from facemask.vision.faces import Face
from facemask.vision.images import IMAGE_SUFFIXES, ImageError, load_frame, open_image
from facemask.vision.spec import DEFAULT_SPEC, InputSpec

log = logging.getLogger(__name__)


def photo_paths(photos: str | Path, images: ImageSet) -> list[Path | None]:
    """The full-size photo of each image (same class folder, same stem), None where there is none."""
    index = {}
    for label, folder in class_folders(Path(photos)).items():
        for path in folder.iterdir():
            if path.suffix.lower() in IMAGE_SUFFIXES:
                index[label, path.stem] = path
    return [
        index.get((label, path.stem))
        for path, label in zip(images.paths, images.labels.tolist(), strict=True)
    ]


def at_spec(
    images: ImageSet, photos: Sequence[Path | None], spec: InputSpec, cache_dir: str | Path | None = None
) -> ImageSet:
    """A dataset's images at the input spec: as they are at the default (28 / 1), else each re-made from its
    full-size photo (``photo_paths``) the way the dataset was made, whole photo to size x size (at 28 / 1 that
    gives the dataset's pixels: ``facemask data prepare``); cached."""
    if spec == DEFAULT_SPEC:
        return images
    lacking = [path for path, photo in zip(images.paths, photos, strict=True) if photo is None]
    if lacking:
        raise DatasetError(
            f"{lacking[0]}: no full-size photo to make it at {spec.size} px, {spec.channels} channel(s) "
            f"({len(lacking)} image(s) without one; data.photos / data.test_photos name the photos)"
        )
    converted = cached(
        cache_dir,
        "at-spec",
        [[str(p) for p in photos], spec.record()],
        lambda: np.stack([spec.convert(open_image(photo)) for photo in photos]),
    )
    return ImageSet(torch.from_numpy(spec.channels_first(converted)), images.labels, images.paths)


def detected_faces(
    paths: Sequence[Path | None],
    cache_dir: str | Path | None = None,
    skip_bad_files: bool = False,
    pad: float | None = None,
) -> list[list[Face]]:
    """Every face CenterFace finds in each photo (none for a missing photo); an unreadable photo stops
    with its name, or is warned about and counts as faceless with ``skip_bad_files``. With ``pad``, each
    photo is a face crop, padded (``vision.crops.pad_crop``) before detection, boxes in the padded pixels.
    Cached per photo list."""

    def detect() -> np.ndarray:  # one row a face: photo index, box, landmarks
        from facemask.vision.faces import CenterFace

        detector, rows, nan = CenterFace(), [], [np.nan] * 10
        described = f"detecting faces in {len(paths)} {'crops' if pad is not None else 'photos'}"
        for index, path in enumerate(
            track(paths, described, disable=not sys.stderr.isatty(), transient=True)
        ):
            if path is None:
                continue
            try:
                frame = load_frame(path)
                found = detector(frame if pad is None else pad_crop(frame, pad, DETECTOR_FILL))
            except ImageError as err:
                if not skip_bad_files:
                    raise
                log.warning("skipped %s", err)
                continue
            rows.extend(
                [index, *face.box, *(np.ravel(face.landmarks) if face.landmarks else nan)] for face in found
            )
        return np.array(rows, dtype=np.float32).reshape(-1, 15)

    key = [str(p) for p in paths] if pad is None else [[str(p) for p in paths], pad, DETECTOR_FILL]
    rows = cached(cache_dir, "detections", key, detect)
    found: list[list[Face]] = [[] for _ in paths]
    for row in rows:
        landmarks = () if np.isnan(row[5]) else tuple(map(tuple, row[5:].reshape(5, 2).tolist()))
        found[int(row[0])].append(Face(tuple(row[1:5].tolist()), 1.0, landmarks))
    return found


def largest_faces(
    paths: Sequence[Path | None], cache_dir: str | Path | None = None, skip_bad_files: bool = False
) -> list[Face | None]:
    """The largest face CenterFace finds in each photo (None: no photo or no face)."""
    return [largest(found) for found in detected_faces(paths, cache_dir, skip_bad_files)]


def matching_face(box: Sequence[float], found: Sequence[Face]) -> Face | None:
    """The detected face that contains the centre of an annotated ``box``, the one nearest to it where
    several do: annotators box faces differently from the detector (eyes to chin), so boxes never match
    exactly, but the face they mean holds their centre."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    holding = [f for f in found if f.box[0] <= cx <= f.box[2] and f.box[1] <= cy <= f.box[3]]
    return min(
        holding,
        key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2,
        default=None,
    )


def read_boxes(csv_path: str | Path, photos: str | Path) -> list[tuple[Path, tuple[float, ...], int]]:
    """(photo, annotated box, class index) of every row of a boxes CSV (``file,x0,y0,x1,y1,class``, files
    relative to the CSV's folder) whose photo lies under ``photos``."""
    csv_path, photos = Path(csv_path), Path(photos).resolve()
    if not csv_path.is_file():
        raise missing(csv_path, "boxes CSV")
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        absent = {"file", "x0", "y0", "x1", "y1", "class"} - set(reader.fieldnames or ())
        if absent:
            raise DatasetError(f"{csv_path}: missing column(s) {', '.join(sorted(absent))}")
        rows = []
        for line, row in enumerate(reader, start=2):
            path = (csv_path.parent / row["file"]).resolve()
            if not path.is_relative_to(photos):
                continue
            label = class_index(row["class"])
            if label is None:
                raise DatasetError(f"{csv_path}:{line}: unknown class {row['class']!r}")
            try:
                box = tuple(float(row[key]) for key in ("x0", "y0", "x1", "y1"))
            except ValueError as err:
                raise DatasetError(f"{csv_path}:{line}: box is not numeric ({err})") from err
            rows.append((path, box, label))
    if not rows:
        raise DatasetError(f"{csv_path}: no boxes of photos under {photos}")
    return rows


def labelled_faces(
    photos: str | Path,
    boxes: str | Path | None = None,
    cache_dir: str | Path | None = None,
    skip_bad_files: bool = False,
) -> list[tuple[Path, int, Face]]:
    """(photo, class index, detected face) of every labelled face of a photo set that CenterFace finds.

    Without ``boxes``, ``photos`` holds class folders and each photo's largest face is its label's face; with
    a boxes CSV, each annotated face is the detected face holding its centre (``matching_face``). Photos or
    annotated faces the detector misses are left out and counted in the log, never relabelled.
    """
    if boxes is None:
        wanted = [
            (path, None, label)
            for label, folder in class_folders(Path(photos)).items()
            for path in sorted(folder.rglob("*"))
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
    else:
        wanted = read_boxes(boxes, photos)
    paths = list(dict.fromkeys(path for path, _, _ in wanted))
    by_photo = dict(zip(paths, detected_faces(paths, cache_dir, skip_bad_files), strict=True))
    found = []
    for path, box, label in wanted:
        candidates = by_photo[path]
        face = largest(candidates) if box is None else matching_face(box, candidates)
        if face is not None:
            found.append((path, label, face))
    if not found:
        raise DatasetError(f"{photos}: no face found in any of its {len(wanted)} labelled faces")
    if len(found) < len(wanted):
        log.warning(
            "%s: the face detector missed %d of %d labelled faces (left out)",
            photos,
            len(wanted) - len(found),
            len(wanted),
        )
    return found


def framed_faces(
    found: Sequence[tuple[Path, int, Face]], margin: float, input_spec: InputSpec = DEFAULT_SPEC
) -> ImageSet:
    """(photo, class index, face) rows as images cut as ``facemask detect`` cuts a face (with ``margin``
    around the detector's box) at the input spec."""
    cropper = FaceCropper(margin=margin, spec=input_spec)
    decoded: dict[Path, Image.Image] = {}
    images = []
    for path, _, face in found:  # a photo with several faces is decoded once
        if path not in decoded:
            decoded = {path: open_image(path)}
        images.append(cropper.crop(decoded[path], face))
    return ImageSet(
        torch.from_numpy(input_spec.channels_first(np.stack(images))),
        torch.tensor([label for _, label, _ in found]),
        [path for path, _, _ in found],
    )
