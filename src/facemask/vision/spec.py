"""The classifier's input: a face at ``size`` x ``size`` pixels, in gray (1 channel, the dataset's) or RGB (3).

One owner of the conversion from an image to that input, used by every path a face takes (training sources,
the crop of predict / detect / serve / calibrate / mine, export's parity check). A model records the spec it was
trained with, in its checkpoint and its ONNX metadata; models from before the record are 28 / 1.

Arrays of faces: gray uint8 (N, size, size), colour uint8 (N, size, size, 3) (RGB, numpy's image layout);
``batch`` turns either into the model's float32 (N, channels, size, size) in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from facemask.errors import FacemaskError


@dataclass(frozen=True)
class InputSpec:
    size: int = 28
    channels: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and 8 <= self.size <= 512):
            raise FacemaskError(f"input size {self.size!r}: expected a whole number of pixels from 8 to 512")
        if self.channels not in (1, 3):
            raise FacemaskError(f"input channels {self.channels!r}: expected 1 (gray) or 3 (RGB)")

    @property
    def face_shape(self) -> tuple[int, ...]:
        """One face as an array: (size, size) gray, (size, size, 3) colour."""
        return (self.size, self.size) if self.channels == 1 else (self.size, self.size, 3)

    @property
    def tensor_shape(self) -> tuple[int, int, int]:
        """One face as the model reads it: (channels, size, size)."""
        return (self.channels, self.size, self.size)

    def convert(self, image: Image.Image) -> np.ndarray:
        """Upright, gray (``convert("L")``, the dataset's) or RGB, Lanczos-resized to size x size (aspect not
        kept): uint8 ``face_shape``."""
        image = ImageOps.exif_transpose(image)
        # 16/32-bit integer pixels (0-65535): Pillow's convert("L") would clip them to white
        if image.mode.startswith("I"):
            image = Image.fromarray((np.asarray(image, dtype=np.int64) >> 8).clip(0, 255).astype(np.uint8))
        image = image.convert("L" if self.channels == 1 else "RGB")
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.LANCZOS)
        return np.asarray(image, dtype=np.uint8)

    def empty(self, count: int = 0) -> np.ndarray:
        return np.zeros((count, *self.face_shape), np.uint8)

    def channels_first(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, *face_shape) -> uint8 (N, channels, size, size), as data sets store them."""
        faces = np.asarray(faces)
        if faces.shape[1:] != self.face_shape:
            raise FacemaskError(f"faces of shape {faces.shape[1:]} given where {self.face_shape} is read")
        return np.ascontiguousarray(faces[:, None] if self.channels == 1 else faces.transpose(0, 3, 1, 2))

    def batch(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, *face_shape) -> float32 (N, channels, size, size) in [0, 1]: the model's input."""
        return self.channels_first(faces).astype(np.float32) / 255.0

    def faces(self, images: np.ndarray) -> np.ndarray:
        """The inverse of ``channels_first``: uint8 (N, channels, size, size) -> (N, *face_shape)."""
        return images[:, 0] if self.channels == 1 else images.transpose(0, 2, 3, 1)

    def record(self) -> dict[str, int]:
        """What a checkpoint and an ONNX file store."""
        return {"size": self.size, "channels": self.channels}

    @classmethod
    def recorded(cls, record: dict | None) -> InputSpec:
        """The spec a model stored (models from before the record: 28 / 1)."""
        record = record or {}
        return cls(int(record.get("size", 28)), int(record.get("channels", 1)))


#: The case study's dataset: 28x28 grayscale. The framework's default and research baseline.
DEFAULT_SPEC = InputSpec()


def spec_key(spec: InputSpec) -> list[dict[str, int]]:
    """What a cache key adds for a spec: nothing for the default, so that caches made before it stay valid."""
    return [] if spec == DEFAULT_SPEC else [spec.record()]
