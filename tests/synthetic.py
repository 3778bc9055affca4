"""Tiny generated face images: unit tests never need the real dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def face(with_mask: bool, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A learnable toy face: a masked one has a bright band over the lower half."""
    image = rng.normal(110, 25, (size, size))
    if with_mask:
        image[size // 2 :, 4:-4] += 90
    return image.clip(0, 255).astype(np.uint8)


def make_image_folder(
    root: Path, per_class: int = 10, names: tuple[str, str] = ("WithMask", "WithoutMask"), seed: int = 0
) -> Path:
    """``root/<name>/*.png`` with ``per_class`` images each; returns ``root``."""
    rng = np.random.default_rng(seed)
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(face(name.lower().replace("_", "") == "withmask", rng)).save(
                root / name / f"{i}.png"
            )
    return root
