"""Privacy: faces blurred beyond recognition in whatever an app saves (``detect --blur``)."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np


def blur(image: np.ndarray, regions: Iterable[tuple[int, int, int, int]] | None = None) -> np.ndarray:
    """``image`` with each ``(left, top, right, bottom)`` region (default: all of it) blurred, in place: a
    Gaussian a third of the region wide, which leaves a face's colours and no feature."""
    height, width = image.shape[:2]
    for left, top, right, bottom in regions if regions is not None else [(0, 0, width, height)]:
        patch = image[top:bottom, left:right]
        if patch.size:
            kernel = max(3, (max(patch.shape[:2]) // 3) | 1)
            image[top:bottom, left:right] = cv2.GaussianBlur(patch, (kernel, kernel), 0)
    return image
