"""``facemask mine``: the bare faces a model calls masks, or nearly does: the next training's hard negatives.

Faces known to be bare (a folder such as realfaces/bare/train, or a site's footage of its staff cut to faces)
go through the deployment path: each image is taken for a face crop, padded, CenterFace's face in it (or the
crop itself where it finds none), cut with the model's margin, scored. Those scored above ``threshold - near``
are copied to ``OUT/faces/`` (which ``data/mined=faces`` takes back into training), listed with their scores
in ``OUT/mined.csv`` and shown on ``OUT/contact_sheet.png``. Torch-free with an ONNX model.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from rich.progress import track

from facemask.decision import is_mask
from facemask.errors import FacemaskError
from facemask.inference.classifier import Classifier, scores
from facemask.vision.crops import FaceCropper
from facemask.vision.images import ImageError, load_frame

SHEET_COLUMNS, TILE = 10, 84  # the contact sheet: crops shown 84 px wide (28 px ones 3x), their score beneath


@dataclass(frozen=True)
class Mined:
    """One bare face the model calls a mask (``called``) or puts within ``near`` of its threshold."""

    file: Path
    p_mask: float
    called: bool
    detected: bool  # the detector found the face (else the crop itself was the face box)
    crop: np.ndarray  # uint8 (size, size) gray or (size, size, 3) RGB: what the classifier saw


@dataclass
class MiningReport:
    scored: int
    detected: int
    mined: list[Mined]
    errors: list[str]
    threshold: float
    near: float

    def lines(self) -> list[str]:
        called = sum(face.called for face in self.mined)
        return [
            f"{self.scored} bare faces scored (the detector found {self.detected}; the others framed as the "
            "crop itself)",
            f"called masks: {called} ({called / max(self.scored, 1):.2%}) at threshold {self.threshold:.4f}; "
            f"within {self.near:g} below it: {len(self.mined) - called}",
            *(f"unreadable: {message}" for message in self.errors),
        ]


def score_faces(
    classifier: Classifier, cropper: FaceCropper, files: Sequence[Path], progress: bool = False
) -> tuple[list[tuple[Path, bool, np.ndarray]], np.ndarray, list[str]]:
    """(file, detected, crop) of every readable face crop, P(mask) of each, and one message per unreadable one."""
    faces, errors = [], []
    for path in track(files, "scoring faces", disable=not progress, transient=True):
        try:
            frame = load_frame(path)
        except ImageError as err:
            errors.append(str(err))
            continue
        face, crop = cropper.crop_of_crop(frame)
        faces.append((path, face.score > 0, crop))
    crops = np.stack([crop for _, _, crop in faces]) if faces else classifier.spec.empty()
    return faces, scores(classifier, crops), errors


def mine(
    classifier: Classifier,
    cropper: FaceCropper,
    files: Sequence[Path],
    top: int | None = None,
    near: float = 0.1,
    progress: bool = False,
) -> MiningReport:
    """The faces of ``files`` scored above ``threshold - near``, highest first, at most ``top``."""
    if near < 0:
        raise FacemaskError(f"--near {near}: expected a score distance >= 0")
    if top is not None and top < 1:
        raise FacemaskError(f"--top {top}: expected a number of faces >= 1")
    faces, probs, errors = score_faces(classifier, cropper, files, progress)
    threshold = classifier.threshold
    hard = np.flatnonzero(is_mask(probs, threshold - near))
    hard = hard[np.argsort(-probs[hard], kind="stable")][:top]
    mined = [
        Mined(faces[i][0], float(probs[i]), bool(is_mask(probs[i], threshold)), faces[i][1], faces[i][2])
        for i in hard
    ]
    return MiningReport(len(faces), sum(found for _, found, _ in faces), mined, errors, threshold, near)


def write_mined(report: MiningReport, output: str | Path) -> Path:
    """``output/faces/`` (copies of the mined files), ``output/mined.csv`` and ``output/contact_sheet.png``."""
    output = Path(output)
    faces = output / "faces"
    faces.mkdir(parents=True, exist_ok=True)
    with (output / "mined.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "copy", "p_mask", "called_mask", "face_found"])
        for face in report.mined:
            copy = unused_name(faces / face.file.name)
            shutil.copy2(face.file, copy)
            writer.writerow(
                [face.file, copy.name, f"{face.p_mask:.6f}", int(face.called), int(face.detected)]
            )
    contact_sheet(report.mined).save(output / "contact_sheet.png")
    return output


def unused_name(path: Path) -> Path:
    """``path``, or ``stem_1.suffix``, ``stem_2.suffix``... where it is taken (folders of several sources)."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


def contact_sheet(mined: Sequence[Mined]) -> Image.Image:
    """The mined faces as the classifier saw them, highest score first, each with its P(mask) (red: called
    a mask, orange: near the threshold)."""
    rows = max(1, -(-len(mined) // SHEET_COLUMNS))
    sheet = Image.new("RGB", (SHEET_COLUMNS * TILE, rows * (TILE + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, face in enumerate(mined):
        x, y = (i % SHEET_COLUMNS) * TILE, (i // SHEET_COLUMNS) * (TILE + 14)
        sheet.paste(
            Image.fromarray(face.crop).resize((TILE - 4, TILE - 4), Image.Resampling.NEAREST), (x + 2, y + 2)
        )
        draw.text((x + 4, y + TILE - 1), f"{face.p_mask:.2f}", fill="red" if face.called else "darkorange")
    if not mined:
        draw.text((8, 8), "no face mined", fill="black")
    return sheet
