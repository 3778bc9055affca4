"""``facemask detect``: one camera's frame pipeline (``CameraSession``) driven over a source, with the
annotated frames, the frame log and the events written as it goes.

Ctrl-C (or ``q`` in the ``--show`` window) ends the loop and still finalises the video, the log and the
events: every person still in view becomes an event and the webhook is drained.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.progress import track

from facemask.errors import FacemaskError
from facemask.inference.frames import FrameResult
from facemask.inference.logfiles import JsonLines
from facemask.inference.records import FrameRecord
from facemask.inference.session import CameraSession
from facemask.inference.sources import VIDEO_SUFFIXES, Source
from facemask.progress import stderr_console
from facemask.vision.blur import blur

COLOURS = {"WithMask": (0, 200, 0), "WithoutMask": (0, 0, 230)}  # BGR: green mask, red no mask


def annotate(
    frame: np.ndarray, result: FrameResult, fps: float | None = None, blurred: bool = False
) -> np.ndarray:
    """Each face's box (the detector's, as the docs and the web page show it; the crop the classifier saw is in
    the log) with label and confidence, or, where the face has a person, the person's id and voted label
    (``#3 mask 91%``); the FPS counter top-left for video only. ``blurred``: the crops blurred under the boxes."""
    out = blur(frame.copy(), result.crops) if blurred else frame.copy()
    thickness = max(1, round(max(frame.shape[:2]) / 400))
    scale = max(0.4, max(frame.shape[:2]) / 1000)
    for record in result.records():
        left, top, right, bottom = (round(v) for v in record.box)
        person = record.person
        colour = COLOURS[person.label if person else record.label]
        text = f"#{person.id} {person.tag}" if person else record.tag
        cv2.rectangle(out, (left, top), (right, bottom), colour, thickness)
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
    events: dict | None = None  # people per label and per minute, webhook counts (with people)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def run_detection(
    source: Source,
    session: CameraSession,
    output: Path | None = None,
    log: JsonLines | None = None,
    show: bool = False,
    max_frames: int | None = None,
    progress: bool = False,
) -> Summary:
    """The loop; returns counts and the mean FPS. The video writer, log, session and its sink are closed
    whatever happens. ``progress``: a transient bar over the frames on stderr where their number is known
    (not a camera); the session's ``blurred`` also blurs the faces in the saved frames."""
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
            tick, seconds = time.perf_counter(), source.seconds(index, start)
            result, _ = session.see(frame, seconds)
            took = time.perf_counter() - tick
            smoothed = took if smoothed is None else 0.9 * smoothed + 0.1 * took
            summary.frames, summary.faces = summary.frames + 1, summary.faces + len(result.faces)
            if log is not None:
                log.write(FrameRecord(camera=session.name, frame=index, source=name, time=round(seconds, 4),
                                      faces=result.records()))  # fmt: skip
            fps = 1 / smoothed if source.is_video else None
            if (output is not None or show) and not sink.write(
                name, index, annotate(frame, result, fps, session.blurred)
            ):
                break
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        sink.close()
        if log is not None:
            log.close()
        session.close()
        if session.options is not None:
            stats = session.stats()
            summary.events = {"people": stats["people"], "per_minute": stats["per_minute"]}
            summary.events |= session.sink.close() if session.sink else {}
        summary.seconds = time.perf_counter() - start
    return summary
