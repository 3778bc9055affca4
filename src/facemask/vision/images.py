"""Decode one image file, upright, with one clear error per bad file; ``vision.spec`` converts it the way the
dataset was made (../shared/README.md: EXIF orientation applied, grayscale, Lanczos resize to 28x28, aspect
ratio not kept). Training, prepare, predict and serve all go through here, so a face reaches the classifier in
the same form everywhere.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facemask.errors import FacemaskError
from facemask.vision.spec import DEFAULT_SPEC, InputSpec

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"})


class ImageError(FacemaskError):
    """An image file that cannot be decoded; the message names the file and the reason, ``reason`` says which
    (empty, missing, not_image, corrupt, too_large) for callers that word it their own way (the web page)."""

    def __init__(self, message: str, reason: str = "corrupt") -> None:
        super().__init__(message)
        self.reason = reason


class ImageTooLarge(ImageError):
    """An image over the pixel limit of its use, refused before it is decoded."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "too_large")


def open_image(
    path: str | Path, data: bytes | None = None, max_pixels: int | None = None, max_side: int | None = None
) -> Image.Image:
    """The decoded image in ``path`` (or in ``data``, named ``path``: an upload), upright (EXIF
    applied), or ImageError saying what is wrong.

    ``max_pixels`` refuses a larger image from its header, before decoding: Pillow's own guard lets a 0.5 MB
    PNG of 13000x13000 through, and it costs 1.7 GB to decode. ``max_side`` lets a JPEG decode at 1/2, 1/4
    or 1/8 of its size (Pillow's draft mode: the DCT scales down as it decodes) while its longer side stays
    at least ``max_side``: a 12-megapixel photo then costs a quarter of the memory and time.
    """
    path = Path(path)
    try:
        if (len(data) if data is not None else path.stat().st_size) == 0:
            raise ImageError(f"{path}: empty file (0 bytes)", "empty")
        with warnings.catch_warnings():  # Pillow's "DOS attack" warning: the limits here speak instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path if data is None else io.BytesIO(data))
        with image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLarge(
                    f"{path}: {width}x{height} pixels, more than the {max_pixels / 1e6:g}-megapixel limit"
                )
            if max_side is not None and image.format == "JPEG" and max(width, height) > max_side:
                scale = max_side / max(width, height)
                image.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
            image.load()
            return ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        limit = 2 * Image.MAX_IMAGE_PIXELS / 1e6
        raise ImageTooLarge(
            f"{path}: image too large to decode safely (over {limit:.0f} megapixels)"
        ) from err
    except UnidentifiedImageError as err:
        raise ImageError(f"{path}: not an image file Pillow can read", "not_image") from err
    except FileNotFoundError as err:
        raise ImageError(f"{path}: no such file", "missing") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: corrupt or truncated image ({err})") from err


def load_image(path: str | Path, spec: InputSpec = DEFAULT_SPEC) -> np.ndarray:
    """Read ``path`` into the classifier's input format, or raise ImageError saying what is wrong."""
    return spec.convert(open_image(path))


def load_frame(
    path: str | Path, data: bytes | None = None, max_pixels: int | None = None, max_side: int | None = None
) -> np.ndarray:
    """Read ``path`` (or ``data``) as a BGR uint8 frame (H, W, 3): the face detector's input, like a camera
    frame (limits as ``open_image``). One copy of the pixels besides Pillow's, swapped to BGR in place."""
    with open_image(path, data, max_pixels, max_side) as image:
        frame = np.array(image if image.mode == "RGB" else image.convert("RGB"))
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR, dst=frame)
