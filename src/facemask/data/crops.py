"""Folders of face crops (web crops, a site's footage already cut to faces) as training and validation faces.

A crop is framed the way deployment frames a face: padded (``vision.crops.pad_crop``), the face CenterFace finds
there, that box plus the model's margin. Where the detector misses, the crop itself is taken as the face box
(``fallback``, the default: web crops are faces, and the faces a detector misses are the hard ones) or the crop is
left out; either way the misses are counted in the log, never relabelled. Detection and framing are cached.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from facemask.data.cache import cached
from facemask.data.folder import CLASSES, ImageSet, class_folders, class_index
from facemask.data.photos import detected_faces
from facemask.data.root import missing
from facemask.errors import DatasetError
from facemask.vision.crops import CROP_PAD, DETECTOR_FILL, FaceCropper, face_of_crop, pad_crop
from facemask.vision.images import IMAGE_SUFFIXES, ImageError, load_frame
from facemask.vision.spec import DEFAULT_SPEC, InputSpec, spec_key

log = logging.getLogger(__name__)

#: How each crop was framed, the last column of the cache: left out, the detector's face, the crop itself.
SKIPPED, DETECTED, FALLBACK = 0, 1, 2


def class_of(name: str, folder: str | Path) -> int:
    """The class index of a one-class crop folder's ``label`` (WithMask or WithoutMask)."""
    label = class_index(str(name))
    if label is None:
        raise DatasetError(f"{folder}: label {name!r} is not a class (expected {' or '.join(CLASSES)})")
    return label


def crop_files(folder: str | Path, label: int | None = None) -> list[tuple[Path, int]]:
    """(crop, class index) of every image in ``folder``: its class folders, or all of it as class ``label``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise missing(folder, "face crop folder")
    folders = {label: folder} if label is not None else class_folders(folder)
    files = [
        (path, index)
        for index, root in folders.items()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DatasetError(f"{folder}: no image files")
    return files


def framed_crops(
    folder: str | Path,
    margin: float,
    label: int | None = None,
    fallback: bool = True,
    cache_dir: str | Path | None = None,
    skip_bad_files: bool = False,
    input_spec: InputSpec = DEFAULT_SPEC,
) -> ImageSet:
    """The crops of ``folder`` (class folders, or one class ``label``) as faces cut with ``margin`` at the
    input spec."""
    files = crop_files(folder, label)
    paths = [path for path, _ in files]
    found = detected_faces(paths, cache_dir, skip_bad_files, pad=CROP_PAD)

    def frame() -> np.ndarray:  # one row a crop: the flattened image and how it was framed
        cropper, rows = FaceCropper(margin=margin, spec=input_spec), []
        pixels = int(np.prod(input_spec.face_shape))
        for path, faces in zip(paths, found, strict=True):
            try:
                crop = load_frame(path)
            except ImageError:  # reported (or stopped on) by the detection above
                rows.append(np.zeros(pixels + 1, np.uint8))
                continue
            face = face_of_crop(faces, crop.shape, CROP_PAD, fallback)
            how = SKIPPED if face is None else DETECTED if faces else FALLBACK
            image = input_spec.empty(1)[0] if face is None else cropper.crop(pad_crop(crop, CROP_PAD), face)
            rows.append(np.append(image.reshape(-1), np.uint8(how)))
        return np.stack(rows)

    key = [[str(p) for p in paths], margin, CROP_PAD, DETECTOR_FILL, fallback, *spec_key(input_spec)]
    rows = cached(cache_dir, "crops", key, frame)
    how = rows[:, -1]
    log.info(
        "%s: the face detector found the face in %d of %d crops; %d %s (margin %g)",
        folder,
        int((how == DETECTED).sum()),
        len(rows),
        int((how != DETECTED).sum()),
        "framed as the crop itself" if fallback else "left out",
        margin,
    )
    keep = np.flatnonzero(how != SKIPPED)
    if len(keep) == 0:
        raise DatasetError(f"{folder}: no face found in any of its {len(rows)} crops")
    return ImageSet(
        torch.from_numpy(input_spec.channels_first(rows[keep, :-1].reshape(-1, *input_spec.face_shape))),
        torch.tensor([files[i][1] for i in keep]),
        [paths[i] for i in keep],
    )
