"""The full-size photos behind the 28x28 training images, and the face the detector finds in each.

Mask synthesis and detector-framed training both start from ``../shared/data/train-photos``
(``WithMask/`` and ``WithoutMask/``, the originals of mask28/Train under the same stems). Detection
runs once per set of photos and is cached, so that every variant after the first costs only drawing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facemask.data.folder import DatasetError, ImageSet, class_folders
from facemask.data.images import IMAGE_SUFFIXES, ImageError, load_frame, open_image, to_gray28
from facemask.inference.faces import DEFAULT_MARGIN, Face, crop_box

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


def cached(
    cache_dir: str | Path | None, name: str, key: object, compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """``compute()``, saved under ``cache_dir`` as ``{name}-{hash of key}.npy`` and loaded from there next time."""
    digest = hashlib.sha1(json.dumps(key, default=str).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{name}-{digest}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path)
    result = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, result)
    return result


def largest_faces(
    paths: Sequence[Path | None], cache_dir: str | Path | None = None, skip_bad_files: bool = False
) -> list[Face | None]:
    """The largest face CenterFace finds in each photo (None: no photo or no face); an unreadable photo
    stops with its name, or is warned about and counts as faceless with ``skip_bad_files``."""

    def detect() -> np.ndarray:
        from facemask.inference.faces import CenterFace

        detector, rows = CenterFace(), []
        for path in paths:
            face = None
            if path is not None:
                try:
                    found = detector(load_frame(path))
                    face = max(
                        found, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None
                    )
                except ImageError as err:
                    if not skip_bad_files:
                        raise
                    log.warning("skipped %s", err)
            rows.append([*face.box, *np.ravel(face.landmarks)] if face else [np.nan] * 14)
        return np.array(rows, dtype=np.float32).reshape(-1, 14)

    rows = cached(cache_dir, "faces", [str(p) for p in paths], detect)
    return [
        None
        if np.isnan(row[0])
        else Face(tuple(row[:4].tolist()), 1.0, tuple(map(tuple, row[4:].reshape(5, 2).tolist())))
        for row in rows
    ]


def framed(photo: Image.Image, face: Face | None, margin: float | None = DEFAULT_MARGIN) -> np.ndarray:
    """``photo`` as a 28x28 training image: the detector's box plus ``margin`` (as ``facemask detect``
    crops it), or the whole photo (the dataset's framing) where ``margin`` is None or no face was found."""
    if face is not None and margin is not None:
        photo = photo.crop(crop_box(face.box, (photo.height, photo.width), margin))
    return to_gray28(photo)


def detected_folder(
    root: str | Path, cache_dir: str | Path | None = None, skip_bad_files: bool = False
) -> ImageSet:
    """An ImageFolder of full-size photos as the deployed system sees it: the largest face CenterFace finds
    in each, cut with the default margin, in 28x28. Photos without a face found are left out (counted)."""
    files = [
        (path, label)
        for label, folder in class_folders(Path(root)).items()
        for path in sorted(folder.rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    faces = largest_faces([path for path, _ in files], cache_dir, skip_bad_files)
    found = [
        (path, label, face) for (path, label), face in zip(files, faces, strict=True) if face is not None
    ]
    if not found:
        raise DatasetError(f"{root}: no face found in any of its {len(files)} photos")
    if len(found) < len(files):
        log.warning(
            "%s: no face found in %d of %d photos (left out)", root, len(files) - len(found), len(files)
        )
    return ImageSet(
        torch.from_numpy(np.stack([framed(open_image(path), face) for path, _, face in found])).unsqueeze(1),
        torch.tensor([label for _, label, _ in found]),
        [path for path, _, _ in found],
    )
