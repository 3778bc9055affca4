"""``facemask predict``: label image files, whole (face crops like the dataset's) or face by face.

Bad files never stop the run: each is reported with its reason at the end, and the exit code says so.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from facemask.errors import FacemaskError
from facemask.inference.classifier import Classifier, labels_for, scores
from facemask.inference.records import Prediction, Verdict
from facemask.vision.crops import FaceCropper
from facemask.vision.images import IMAGE_SUFFIXES, ImageError, load_frame, open_image

#: Longer side in pixels past which an image is taken for a full photo, not a face crop: the face crops the
#: dataset was made from are at most 960 px (../shared/data/photos: 178-960, median 428; realworld/photos
#: 160), camera and phone photos 1280 px and more. Cropped faces of train-photos are over it in 5% of cases,
#: hence the warning needs half the images over it, not one.
FULL_PHOTO_PX = 1000


def image_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named directly (whatever their suffix: a bad one is reported, not ignored) and image
    files found recursively in folders, in sorted order."""
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        elif path.exists():
            yield path
        else:
            raise FacemaskError(f"{path}: no such file or folder")


def predict_files(
    classifier: Classifier,
    files: list[Path],
    cropper: FaceCropper | None = None,
    progress: bool = True,
) -> tuple[list[Prediction], list[str]]:
    """Predictions for every readable file (every face with a ``cropper``, which holds the face detector) and
    one message per unreadable one.

    An image where the detector finds no face gets a row labelled ``no face``.
    """
    crops, keys, errors, sides = [], [], [], []
    for path in track(
        files, description="predicting", disable=not progress or len(files) < 2, transient=True
    ):
        try:
            if cropper is None:
                image = open_image(path)
                sides.append(max(image.size))
                crops.append(classifier.spec.convert(image)[None])
                keys.append((path, None, None, None))
                continue
            frame = load_frame(path)
        except ImageError as err:
            errors.append(str(err))
            continue
        faces, face_crops = cropper(frame)
        crops.append(face_crops)
        keys.extend((path, i, face.box, cropper.box(face, frame.shape)) for i, face in enumerate(faces))
        if not faces:
            keys.append((path, -1, None, None))
    warn_if_full_photos(sides)
    images = np.concatenate(crops) if crops else classifier.spec.empty()
    return _rows(classifier, keys, scores(classifier, images)), errors


def warn_if_full_photos(sides: list[int]) -> None:
    """One line on stderr where at least half the images (by their longer ``sides``) are larger than the face
    crops the model was trained on: labelled whole, a full photo's faces are a few pixels of the 28x28."""
    large = sum(side > FULL_PHOTO_PX for side in sides)
    if sides and 2 * large >= len(sides):
        print(
            f"warning: {large} of {len(sides)} images are over {FULL_PHOTO_PX} px on a side, larger than "
            "face crops: full photos? --detect finds and labels each face",
            file=sys.stderr,
        )


def _rows(classifier: Classifier, keys: list[tuple], probs: np.ndarray) -> list[Prediction]:
    labels, rows, scored = labels_for(classifier, probs), [], iter(range(len(probs)))
    for path, face, box, crop in keys:
        if face == -1:
            face, p, label = None, float("nan"), "no face"
        else:
            i = next(scored)
            p, label = float(probs[i]), labels[i]
        rows.append(
            Prediction(
                file=str(path),
                threshold=classifier.threshold,
                face=face,
                box=None if box is None else [round(v) for v in box],
                crop=None if crop is None else list(crop),
                **Verdict.of(label, p, classifier.threshold),
            )
        )
    return rows


def render(rows: list[Prediction], fmt: str, console: Console) -> None:
    """Print ``rows`` as a table, CSV or JSON (one object per row; NaN as null)."""
    if fmt == "json":
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=1))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            ["file", "face", "x1", "y1", "x2", "y2", "label", "p_mask", "threshold", "confidence"]
        )
        for r in rows:
            box = list(r.box) if r.box else ["", "", "", ""]
            p, sure = ("", "") if r.p_mask is None else (f"{r.p_mask:.6f}", f"{r.confidence:.6f}")
            writer.writerow(
                [r.file, "" if r.face is None else r.face, *box, r.label, p, f"{r.threshold:.6f}", sure]
            )
        print(buffer.getvalue(), end="")
    else:
        table = Table("file", "face", "box", "decision", "P(mask)", "threshold", box=None)
        for r in rows:
            colour = {"WithMask": "green", "WithoutMask": "red"}.get(r.label, "yellow")
            table.add_row(
                r.file,
                "" if r.face is None else str(r.face),
                "" if r.box is None else " ".join(map(str, r.box)),
                f"[{colour}]{r.tag}[/]",
                "" if r.p_mask is None else f"{r.p_mask:.3f}",
                f"{r.threshold:.3f}",
            )
        console.print(table)
