"""``facemask detect``: the frame loop. Source -> faces -> one classifier batch -> annotated frame + log.

Sources: a camera index, a video file, an image, or a folder of images. Ctrl-C (or ``q`` in the
``--show`` window) ends the loop and still finalises the video, the log and the events. With a
``PersonTracker`` (tracking.py) each face also carries its person: track id and voted label; people's
events go to an ``EventSink`` (events.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import cv2
import numpy as np
from rich.progress import track

from facemask.decision import confidence, tag
from facemask.errors import FacemaskError
from facemask.inference.classifier import Classifier, labels_for
from facemask.inference.streams import LiveStream, is_stream
from facemask.progress import stderr_console
from facemask.vision.blur import blur
from facemask.vision.crops import FaceCropper
from facemask.vision.faces import Face
from facemask.vision.images import IMAGE_SUFFIXES, ImageError, load_frame

if TYPE_CHECKING:
    from facemask.inference.events import EventSink
    from facemask.inference.tracking import Person, PersonTracker

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"})
COLOURS = {"WithMask": (0, 200, 0), "WithoutMask": (0, 0, 230)}  # BGR: green mask, red no mask


@dataclass
class Source:
    """Frames with their names; ``fps`` for a video or camera (None for images); ``length``, the number of
    frames where it is known (a video file, images; None for a camera)."""

    frames: Iterator[tuple[str, np.ndarray]]
    fps: float | None
    is_video: bool
    length: int | None = None


def open_source(source: str) -> Source:
    """A camera index (``0``), a stream URL (``rtsp://``...: read in real time, reopened when it drops), a
    video file, an image file or a folder of images."""
    if is_stream(source):
        stream = LiveStream(source)
        return Source(stream.frames(), stream.fps, True, None)
    if source.isdigit():
        return _capture(cv2.VideoCapture(int(source)), f"camera {source}")
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


def _capture(capture: cv2.VideoCapture, name: str) -> Source:
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

    return Source(frames(), fps, True, length if length > 0 else None)


@dataclass
class FrameResult:
    """The faces of one frame: detections, the region each crop was cut from, labels and P(WithMask)."""

    faces: list[Face]
    crops: list[tuple[int, int, int, int]]
    labels: list[str]
    probs: np.ndarray
    threshold: float

    def face_records(self, persons: list[Person | None] | None = None) -> list[dict]:
        """One dict per face, the shape of a classified face everywhere (detect's log, the web API); with
        ``persons`` (one per face, from a ``PersonTracker``) also its track and the person's voted label."""
        records = []
        for face, crop, label, p in zip(self.faces, self.crops, self.labels, self.probs, strict=True):
            sureness = confidence(float(p), self.threshold)
            records.append(
                {
                    "box": [round(v, 1) for v in face.box],
                    "crop": list(crop),
                    "score": round(face.score, 4),
                    "label": label,
                    "p_mask": round(float(p), 4),
                    "confidence": round(sureness, 4),
                    "tag": tag(label, sureness),
                }
            )
        if persons is not None:
            for record, person in zip(records, persons, strict=True):
                record.update(person_record(person))
        return records

    def record(
        self, frame: int, name: str, elapsed: float, persons: list[Person | None] | None = None
    ) -> dict:
        """One JSON-lines entry."""
        return {
            "frame": frame,
            "source": name,
            "time": round(elapsed, 4),
            "faces": self.face_records(persons),
        }


def person_record(person: Person | None) -> dict:
    """A face's person: track id and voted label (None while its track is unconfirmed, its first frame)."""
    if person is None:
        return dict.fromkeys(("track", "person_label", "person_p_mask", "person_confidence", "person_tag"))
    return {
        "track": person.id,
        "person_label": person.label,
        "person_p_mask": round(person.p_mask, 4),
        "person_confidence": round(person.confidence, 4),
        "person_tag": tag(person.label, person.confidence),
    }


def classify_frame(frame: np.ndarray, cropper: FaceCropper, classifier: Classifier) -> FrameResult:
    """Every face of one frame, classified in one batch."""
    faces, crops = cropper(frame)
    probs = classifier.predict_proba(crops)
    boxes = [cropper.box(face, frame.shape) for face in faces]
    return FrameResult(faces, boxes, labels_for(classifier, probs), probs, classifier.threshold)


def annotate(
    frame: np.ndarray,
    result: FrameResult,
    fps: float | None = None,
    persons: list[Person | None] | None = None,
    blurred: bool = False,
) -> np.ndarray:
    """Each face's box (the detector's, as the docs and the web page show it; the crop the classifier saw is in
    the log) with label and confidence, or with ``persons`` the person's id and voted label (``#3 mask 91%``);
    the FPS counter top-left for video only. ``blurred``: the crops blurred under the boxes."""
    out = blur(frame.copy(), result.crops) if blurred else frame.copy()
    thickness = max(1, round(max(frame.shape[:2]) / 400))
    scale = max(0.4, max(frame.shape[:2]) / 1000)
    for record, person in zip(
        result.face_records(persons), persons or [None] * len(result.faces), strict=True
    ):
        left, top, right, bottom = (round(v) for v in record["box"])
        colour = COLOURS[person.label if person else record["label"]]
        cv2.rectangle(out, (left, top), (right, bottom), colour, thickness)
        text = person.tag if person else record["tag"]
        (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        y = max(top, height + base + 2)
        cv2.rectangle(out, (left, y - height - base - 2), (left + width + 2, y), colour, -1)
        cv2.putText(
            out, text, (left + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness
        )
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} FPS", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2)
    return out


@dataclass
class Sink:
    """Where annotated frames go: a video file, a folder of images, and/or a window."""

    output: Path | None
    video: bool
    fps: float
    show: bool
    writer: cv2.VideoWriter | None = field(default=None, init=False)

    def write(self, name: str, index: int, frame: np.ndarray) -> bool:
        """False when the user closed the window (``q`` or Esc)."""
        if self.output is not None and self.video:
            if self.writer is None:
                self.output.parent.mkdir(parents=True, exist_ok=True)
                size = (frame.shape[1], frame.shape[0])
                self.writer = cv2.VideoWriter(
                    str(self.output), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size
                )
                if not self.writer.isOpened():
                    raise FacemaskError(f"{self.output}: cannot write a video here")
            self.writer.write(frame)
        elif self.output is not None:
            self.output.mkdir(parents=True, exist_ok=True)
            stem = Path(name.split("#")[0]).stem if self.video else Path(name).stem
            cv2.imwrite(str(self.output / f"{index:06d}_{stem}.jpg"), frame)
        if self.show:
            try:
                cv2.imshow("facemask", frame)
                return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)
            except cv2.error as err:
                raise FacemaskError(
                    f"--show needs a display and an OpenCV with GUI support ({err.msg})"
                ) from err
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        if self.show:
            cv2.destroyAllWindows()


@dataclass
class Summary:
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    events: dict | None = None  # EventSink.close(): people per label and per minute, webhook counts

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def run_detection(
    source: Source,
    cropper: FaceCropper,
    classifier: Classifier,
    output: Path | None = None,
    log: IO[str] | None = None,
    show: bool = False,
    max_frames: int | None = None,
    progress: bool = False,
    tracker: PersonTracker | None = None,
    events: EventSink | None = None,
    blurred: bool = False,
) -> Summary:
    """The loop; returns counts and the mean FPS. The video writer, log and events are closed whatever
    happens; at the end every open track becomes an event. ``progress``: a transient bar over the frames on
    stderr where their number is known (not a camera); ``blurred``: faces blurred in the saved frames."""
    video_out = output is not None and output.suffix.lower() in VIDEO_SUFFIXES
    sink = Sink(output, video_out, source.fps or 10.0, show)
    summary, smoothed, start = Summary(), None, time.perf_counter()
    total = min(filter(None, (source.length, max_frames)), default=None)
    frames = track(source.frames, "detecting", total, transient=True, console=stderr_console(),
                   disable=not progress or total is None)  # fmt: skip
    try:
        for index, (name, frame) in enumerate(frames):
            if max_frames is not None and index >= max_frames:
                break
            tick = time.perf_counter()
            result = classify_frame(frame, cropper, classifier)
            persons = tracker.update(result, frame, index, tick - start) if tracker is not None else None
            if events is not None and tracker is not None:
                events.emit(tracker.due())
            took = time.perf_counter() - tick
            smoothed = took if smoothed is None else 0.9 * smoothed + 0.1 * took
            summary.frames, summary.faces = summary.frames + 1, summary.faces + len(result.faces)
            if log is not None:
                log.write(json.dumps(result.record(index, name, tick - start, persons)) + "\n")
            if (output is not None or show) and not sink.write(
                name,
                index,
                annotate(frame, result, 1 / smoothed if source.is_video else None, persons, blurred),
            ):
                break
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        sink.close()
        if log is not None:
            log.flush()
        if events is not None:
            if tracker is not None:
                events.emit(tracker.flush())
            summary.events = events.close()
        summary.seconds = time.perf_counter() - start
    return summary
