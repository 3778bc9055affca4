"""Decode one image file exactly the way the dataset was made, with one clear error per bad file.

../shared/README.md: EXIF orientation applied, grayscale (``convert("L")``), Lanczos resize to 28x28
(aspect ratio not kept). Training, prepare, predict and serve all go through here, so a face reaches
the classifier in the same form everywhere.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facemask.errors import FacemaskError

IMAGE_SIZE = 28
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"})


class ImageError(FacemaskError):
    """An image file that cannot be decoded; the message names the file and the reason."""


def to_gray28(image: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """Upright, grayscale, ``size`` x ``size`` uint8 array: the classifier's input format."""
    image = ImageOps.exif_transpose(image)
    # 16/32-bit integer pixels (0-65535): Pillow's convert("L") would clip them to white
    if image.mode.startswith("I"):
        image = Image.fromarray((np.asarray(image, dtype=np.int64) >> 8).clip(0, 255).astype(np.uint8))
    image = image.convert("L")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def open_image(path: str | Path, data: bytes | None = None) -> Image.Image:
    """The decoded image in ``path`` (or in ``data``, named ``path``: an upload), upright (EXIF
    applied), or ImageError saying what is wrong."""
    path = Path(path)
    try:
        if (len(data) if data is not None else path.stat().st_size) == 0:
            raise ImageError(f"{path}: empty file (0 bytes)")
        with Image.open(path if data is None else io.BytesIO(data)) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path}: image too large to decode safely ({err})") from err
    except UnidentifiedImageError as err:
        raise ImageError(f"{path}: not an image file Pillow can read") from err
    except FileNotFoundError as err:
        raise ImageError(f"{path}: no such file") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: corrupt or truncated image ({err})") from err


def load_image(path: str | Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """Read ``path`` into the classifier's input format, or raise ImageError saying what is wrong."""
    return to_gray28(open_image(path), size)


def load_frame(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """Read ``path`` (or ``data``) as a BGR uint8 frame (H, W, 3): the face detector's input, like a camera frame."""
    rgb = np.asarray(open_image(path, data).convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])
