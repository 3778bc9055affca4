"""Where frames come from: a camera index, a stream URL (reopened when it drops), a video file, an image or a
folder of images, each as ``(name, BGR frame)`` pairs with the time each frame was taken."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facemask.errors import FacemaskError
from facemask.inference.streams import LiveStream, is_stream
from facemask.vision.images import IMAGE_SUFFIXES, ImageError, load_frame

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"})


@dataclass
class Source:
    """Frames with their names; ``fps`` for a video or camera (None for images); ``length``, the number of
    frames where it is known (a video file, images; None for a camera); ``live``: a camera or a stream,
    whose frames are taken now (a file's are taken at its own pace); ``stream``: a network camera's reader,
    for its state and to ``close`` it from another thread."""

    frames: Iterator[tuple[str, np.ndarray]]
    fps: float | None
    is_video: bool
    length: int | None = None
    live: bool = False
    stream: LiveStream | None = None

    def seconds(self, index: int, started: float) -> float:
        """When frame ``index`` was taken: the clock since ``started`` (``time.perf_counter``) live, the
        video's own time for a file, so that people's times do not depend on how fast the PC is."""
        if self.live or not self.fps:
            return time.perf_counter() - started
        return index / self.fps


def open_source(source: str) -> Source:
    """A camera index (``0``), a stream URL (``rtsp://``...: read in real time, reopened when it drops), a
    video file, an image file or a folder of images."""
    if is_stream(source):
        stream = LiveStream(source)
        return Source(stream.frames(), stream.fps, True, None, live=True, stream=stream)
    if source.isdigit():
        return _capture(cv2.VideoCapture(int(source)), f"camera {source}", live=True)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FacemaskError(f"{path}: no images in this folder")
        return Source(_readable_frames(files), None, False, len(files))
    if not path.is_file():
        raise FacemaskError(f"{path}: no such camera, file, folder or stream URL (rtsp://, http://...)")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _capture(cv2.VideoCapture(str(path)), str(path))
    return Source(iter([(str(path), load_frame(path))]), None, False, 1)


def _readable_frames(files: list[Path]) -> Iterator[tuple[str, np.ndarray]]:
    """Frames of a folder's images; an unreadable one is reported on stderr and skipped."""
    for path in files:
        try:
            yield str(path), load_frame(path)
        except ImageError as err:
            print(f"skipped: {err}", file=sys.stderr)


def _capture(capture: cv2.VideoCapture, name: str, live: bool = False) -> Source:
    if not capture.isOpened():
        raise FacemaskError(f"{name} cannot be opened (not connected, busy, or not a video OpenCV can read)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    length = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # -1 or 0: a camera, or a container that does not say

    def frames() -> Iterator[tuple[str, np.ndarray]]:
        try:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield f"{name}#{index}", frame
                index += 1
        finally:
            capture.release()

    return Source(frames(), fps, True, length if length > 0 else None, live)
