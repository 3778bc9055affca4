"""The doors one ``serve`` watches: a ``CameraSession`` per camera, whether the server reads it (``--camera
NAME=SOURCE``: an IP camera's stream, a USB camera, a video) or a browser posts its frames (``/api/live``).

Every camera has its own tracker, people, events and totals; the event sink (``--events`` file, webhook) is
shared and every event names its camera. All inference runs on the one ``worker`` thread (the detector is not
thread-safe), so the readers hand their frames to it and a slow PC drops stale frames rather than queueing
them. ``close`` stops the readers and ends every camera's open tracks as events before the sink drains.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from facemask.errors import FacemaskError
from facemask.inference.classifier import Classifier
from facemask.inference.events import EventSink
from facemask.inference.frames import FrameResult
from facemask.inference.records import EventRecord
from facemask.inference.session import CameraSession
from facemask.inference.sources import Source
from facemask.inference.tracking import PeopleOptions
from facemask.vision.crops import FaceCropper

log = logging.getLogger(__name__)

CAMERA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
BROWSER_FPS = 5.0  # about the rate the page posts frames at
RECENT_EVENTS = 200  # what /api/events keeps for the console


class DoorRefused(FacemaskError):
    """A camera name the server cannot take, with the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_camera_name(name: str) -> str:
    if not CAMERA_NAME.fullmatch(name):
        raise DoorRefused(f"camera name {name!r}: letters, digits, '.', '_' or '-', at most 40")
    return name


@dataclass
class Door:
    """One camera: its session, where its frames come from, its latest frame for the console."""

    session: CameraSession
    source: Source | None = None  # None: a browser posts the frames
    label: str = "browser"
    status: str = "browser"
    started: float = field(default_factory=time.perf_counter)
    latest: tuple[np.ndarray, FrameResult] | None = None
    thread: threading.Thread | None = None


class Entrance:
    """Cameras by name, one shared sink, and the last events for the console."""

    def __init__(
        self,
        classifier: Classifier,
        cropper: FaceCropper,
        options: PeopleOptions | None = None,
        sink: EventSink | None = None,
        blurred: bool = False,
        max_browser_cameras: int = 8,
    ) -> None:
        self.classifier, self.cropper = classifier, cropper
        self.options, self.sink = options or PeopleOptions(), sink or EventSink()
        self.blurred, self.max_browser_cameras = blurred, max_browser_cameras
        self.doors: dict[str, Door] = {}
        self._recent: deque[tuple[int, EventRecord]] = deque(maxlen=RECENT_EVENTS)
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _session(self, name: str, fps: float) -> CameraSession:
        return CameraSession(name, self.cropper, self.classifier, self.options, self.sink, fps, self.blurred)

    def add_camera(self, name: str, source: Source, label: str) -> None:
        """A camera the server reads (started by ``start``)."""
        self.doors[check_camera_name(name)] = Door(
            self._session(name, source.fps or 30.0), source, label, "live"
        )

    def browser_door(self, name: str) -> Door:
        """The door a browser posts ``name``'s frames to, made on its first frame."""
        with self._lock:
            door = self.doors.get(check_camera_name(name))
            if door is None:
                browsers = sum(d.source is None for d in self.doors.values())
                if browsers >= self.max_browser_cameras:
                    raise DoorRefused(
                        f"camera {name}: at most {self.max_browser_cameras} browser cameras", 429
                    )
                door = self.doors[name] = Door(self._session(name, BROWSER_FPS))
            elif door.source is not None:
                raise DoorRefused(f"camera {name}: the server reads this camera itself", 409)
            return door

    def see(self, door: Door, frame: np.ndarray, seconds: float, blur: bool | None = None):
        """One frame of ``door`` (on the worker thread): its faces with their people, the events it completed."""
        if blur is not None:
            door.session.blurred = blur
        result, events = door.session.see(frame, seconds)
        door.latest = (frame, result)
        self._remember(events)
        return result, events

    def _remember(self, events: list[EventRecord]) -> None:
        with self._lock:
            self._recent.extend((next(self._sequence), event) for event in events)

    def recent(self, after: int) -> tuple[int, list[EventRecord]]:
        with self._lock:
            events = [(n, event) for n, event in self._recent if n > after]
        return (events[-1][0] if events else after), [event for _, event in events]

    def start(self, worker: Executor) -> None:
        """A reader thread for each camera the server reads."""
        for name, door in self.doors.items():
            if door.source is not None:
                door.thread = threading.Thread(
                    target=self._read, args=(door, worker), name=f"camera {name}", daemon=True
                )
                door.thread.start()

    def _read(self, door: Door, worker: Executor) -> None:
        """Frames of one camera, in real time: a file at its own pace, a live source as it comes."""
        source, started = door.source, time.perf_counter()
        try:
            for index, (_, frame) in enumerate(source.frames):
                if self._stop.is_set():
                    break
                seconds = source.seconds(index, started)
                if not source.live and (wait := started + seconds - time.perf_counter()) > 0:
                    self._stop.wait(wait)
                worker.submit(self.see, door, frame, seconds).result()
            else:  # the video ended: so did everyone's track
                worker.submit(self._close_door, door).result()
        except Exception:  # a camera's failure is logged and ends that camera, never the server
            log.exception("camera %s stopped", door.session.name)
        door.status = "ended"

    def close(self, worker: Executor) -> dict:
        """Stops the readers; every camera's open tracks become events; the sink drains. The run's counts."""
        self._stop.set()
        for door in self.doors.values():
            if door.source is not None and door.source.stream is not None:
                door.source.stream.close()
        for door in self.doors.values():
            if door.thread is not None:
                door.thread.join(timeout=10)
        for door in self.doors.values():
            worker.submit(self._close_door, door).result()
        return {
            "cameras": {name: door.session.stats() for name, door in self.doors.items()}
        } | self.sink.close()

    def _close_door(self, door: Door) -> None:
        self._remember(door.session.close())

    def stats(self) -> dict:
        """Each door's counts and status, and all doors together."""
        cameras = {
            name: {"source": door.label, "status": self._status(door), **door.session.stats()}
            for name, door in self.doors.items()
        }
        people: dict[str, int] = {}
        for camera in cameras.values():
            for label, count in camera["people"].items():
                people[label] = people.get(label, 0) + count
        return {"frames": sum(c["frames"] for c in cameras.values()), "people": people, "cameras": cameras}

    @staticmethod
    def _status(door: Door) -> str:
        stream = door.source.stream if door.source is not None else None
        return "reconnecting" if door.status == "live" and stream and stream.reconnecting else door.status
