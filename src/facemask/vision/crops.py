"""The one face crop: a face cut out of a photo or frame and converted exactly as the dataset's images were.

Training (detector framing, real photos, photo test sets), predict, detect, serve and calibrate all cut faces
here, so a face reaches the classifier framed alike everywhere. The margin a model was trained with travels
in its checkpoint and in its ONNX file (``margin``); the apps build their cropper from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from facemask.errors import FacemaskError
from facemask.vision.faces import Face, FaceDetector
from facemask.vision.spec import DEFAULT_SPEC, InputSpec

#: Context added around the detector's box on every side, as a fraction of the box, so that a crop is
#: framed like the dataset's photos: on ../shared/data/train-photos CenterFace's box covers a median 58%
#: of the photo's width and height, and (1 / 0.58 - 1) / 2 = 0.36. Models record the margin they were
#: trained with; this is the value for training and for models that predate the record.
DEFAULT_MARGIN = 0.36

#: Border added around a face crop (an image that is already one face, such as a web crop) as a fraction of its
#: longer side: tight crops end at brow and chin, where deployment's crop reaches further (the detector's box
#: plus 0.36 of it on each side). The detector looks at the crop in a mid-grey border (it finds the face in 85%
#: of realfaces' masked web crops so, 71% unpadded, 39% with edges replicated: a face filling the image is what
#: CenterFace misses); the classifier's crop is cut from the crop with its edge pixels replicated instead, the
#: same geometry without a grey frame that only crops would have.
CROP_PAD = 0.5
DETECTOR_FILL = 127


def crop_box(
    box: tuple[float, float, float, float], frame_shape: tuple[int, ...], margin: float
) -> tuple[int, int, int, int]:
    """The detector's box grown by ``margin`` of its size on every side, clipped to the frame."""
    x1, y1, x2, y2 = box
    grow_x, grow_y = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = frame_shape[:2]
    left, top = max(0, int(x1 - grow_x)), max(0, int(y1 - grow_y))
    right, bottom = min(width, int(np.ceil(x2 + grow_x))), min(height, int(np.ceil(y2 + grow_y)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def check_margin(margin: float | None, where: str = "margin") -> None:
    """A margin is a fraction of the box >= 0 (None: the whole image); anything else stops with one line."""
    if margin is not None and not (isinstance(margin, int | float) and margin >= 0):
        raise FacemaskError(f"{where}: {margin!r} is not a margin (a fraction of the face box, >= 0)")


@dataclass(frozen=True)
class FaceCropper:
    """Cuts faces as the classifier expects them: the detector's box plus ``margin`` on every side, then
    the model's input ``spec`` (the dataset's: PIL grayscale, Lanczos resize to 28x28). ``margin`` None keeps
    the whole image (the dataset's own framing). With a ``detector`` it also finds the faces of a frame."""

    detector: FaceDetector | None = None
    margin: float | None = DEFAULT_MARGIN
    spec: InputSpec = DEFAULT_SPEC

    def __post_init__(self) -> None:
        check_margin(self.margin)

    def box(self, face: Face, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The pixels of a frame (or photo of ``(height, width)``) that ``crop`` keeps for ``face``."""
        return crop_box(face.box, frame_shape, self.margin if self.margin is not None else 0.0)

    def crop(self, image: Image.Image | np.ndarray, face: Face | None) -> np.ndarray:
        """One face of a PIL image or a BGR frame as uint8 ``spec.face_shape``; the whole image where ``face``
        or the margin is None."""
        is_frame = isinstance(image, np.ndarray)
        if face is not None and self.margin is not None:
            shape = image.shape if is_frame else (image.height, image.width)
            left, top, right, bottom = self.box(face, shape)
            image = image[top:bottom, left:right] if is_frame else image.crop((left, top, right, bottom))
        if is_frame:
            image = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))  # BGR -> RGB
        return self.spec.convert(image)

    def crops(self, frame: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Each face of a BGR frame as uint8 (N, *spec.face_shape)."""
        if not faces:
            return self.spec.empty()
        return np.stack([self.crop(frame, face) for face in faces])

    def crop_of_crop(
        self, crop: np.ndarray, pad: float = CROP_PAD, fallback: bool = True
    ) -> tuple[Face | None, np.ndarray | None]:
        """A face crop (BGR) cut as deployment cuts a face: padded (``pad_crop``), the detector's face in it or
        the crop itself (``face_of_crop``), plus the margin. (None, None) where the detector misses and
        ``fallback`` is off."""
        if self.detector is None:
            raise ValueError("FaceCropper needs a detector to find faces; crop() cuts given ones")
        found = self.detector(pad_crop(crop, pad, DETECTOR_FILL))
        face = face_of_crop(found, crop.shape, pad, fallback)
        return face, None if face is None else self.crop(pad_crop(crop, pad), face)

    def __call__(self, frame: np.ndarray) -> tuple[list[Face], np.ndarray]:
        """The faces the detector finds in a BGR frame, best first, and their crops."""
        if self.detector is None:
            raise ValueError("FaceCropper needs a detector to find faces; crop() cuts given ones")
        faces = self.detector(frame)
        return faces, self.crops(frame, faces)


def pad_crop(frame: np.ndarray, pad: float = CROP_PAD, fill: int | None = None) -> np.ndarray:
    """A face crop (BGR) with a border of ``pad`` of its longer side on every side: grey level ``fill``, or
    with None its edge pixels replicated."""
    border = round(pad * max(frame.shape[:2]))
    if fill is None:
        return cv2.copyMakeBorder(frame, border, border, border, border, cv2.BORDER_REPLICATE)
    return cv2.copyMakeBorder(frame, border, border, border, border, cv2.BORDER_CONSTANT, value=(fill,) * 3)


def largest(found: Sequence[Face]) -> Face | None:
    """The face with the largest box (None where there is none)."""
    return max(
        found, key=lambda face: (face.box[2] - face.box[0]) * (face.box[3] - face.box[1]), default=None
    )


def face_of_crop(
    found: Sequence[Face], crop_shape: tuple[int, ...], pad: float = CROP_PAD, fallback: bool = True
) -> Face | None:
    """The face a face crop of ``crop_shape`` shows, in the pixels of its padded frame (``pad_crop``): the
    largest face the detector ``found`` there; where it found none, the crop itself as the face box with
    ``fallback`` (score 0, no landmarks), else None."""
    face = largest(found)
    if face is not None or not fallback:
        return face
    border = round(pad * max(crop_shape[:2]))
    height, width = crop_shape[:2]
    return Face((border, border, border + width, border + height), 0.0)
