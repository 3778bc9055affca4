"""Network cameras: a stream URL that OpenCV's FFmpeg backend opens (``rtsp://``, ``http(s)://``, ``udp://``...),
read in real time and reopened when it drops.

A reader thread takes frames as fast as the camera sends them and keeps the newest only: a consumer slower than
the camera (the face detector on two cores) always sees the present, never a queue of the past. When the stream
breaks (the camera reboots, the network drops) the thread reopens it with a growing wait, says so on the log
and carries on; the consumer simply waits for the next frame. Only a stream that cannot be opened at the start
is an error (a wrong URL should not look like a camera that is down).
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from facemask.errors import FacemaskError

log = logging.getLogger(__name__)

SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


def is_stream(source: str) -> bool:
    return source.split("://", 1)[0].lower() in SCHEMES and "://" in source


def redact(url: str) -> str:
    """The URL without its user and password (``rtsp://admin:secret@cam/``), as logs and records name it."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def open_capture(url: str, timeout_s: float) -> cv2.VideoCapture:
    """The stream through FFmpeg, with open and read timeouts (a dead camera must not block for minutes)."""
    timeout_ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)


@dataclass
class StreamStats:
    frames: int = 0  # read from the camera
    stale: int = 0  # replaced by a newer one before they were used: real time kept
    reconnects: int = 0


@dataclass
class LiveStream:
    """``frames()`` yields ``("URL#N", BGR frame)``, the newest each time, until ``close()``.

    ``backoff``: the first and the longest wait between attempts to reopen (doubling in between)."""

    url: str
    timeout_s: float = 5.0
    backoff: tuple[float, float] = (0.5, 8.0)
    opener: Callable[[str, float], cv2.VideoCapture] = open_capture
    stats: StreamStats = field(default_factory=StreamStats)
    reconnecting: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.name = redact(self.url)
        self._capture = self.opener(self.url, self.timeout_s)
        if not self._capture.isOpened():
            self._capture.release()
            raise FacemaskError(
                f"{self.name}: the stream cannot be opened (wrong address, camera off, or no route)"
            )
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 25.0
        self._latest: tuple[int, np.ndarray] | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"stream {self.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        index = 0
        while not self._stop.is_set():
            ok, frame = self._capture.read()
            if not ok:
                self._capture.release()
                if not self._reopen():
                    return
                continue
            with self._changed:
                self.stats.stale += self._latest is not None
                self._latest = (index, frame)
                self.stats.frames += 1
                self._changed.notify_all()
            index += 1
        self._capture.release()

    def _reopen(self) -> bool:
        """Try again and again, waiting longer each time, until the stream is back (True) or closed (False)."""
        wait, longest = self.backoff
        self.reconnecting = True
        while not self._stop.is_set():
            log.warning("%s: the stream dropped; reopening in %.1f s", self.name, wait)
            if self._stop.wait(wait):
                return False
            self._capture = self.opener(self.url, self.timeout_s)
            if self._capture.isOpened():
                self.reconnecting = False
                self.stats.reconnects += 1
                log.warning("%s: the stream is back (reconnect %d)", self.name, self.stats.reconnects)
                return True
            self._capture.release()
            wait = min(wait * 2, longest)
        return False

    def frames(self) -> Iterator[tuple[str, np.ndarray]]:
        """The newest frame each time one arrives, until ``close()`` (or the consumer stops: closed then)."""
        try:
            while not self._stop.is_set():
                with self._changed:
                    self._changed.wait_for(
                        lambda: self._stop.is_set() or self._latest is not None, timeout=0.5
                    )
                    if self._latest is None:
                        continue
                    (index, frame), self._latest = self._latest, None
                yield f"{self.name}#{index}", frame
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self.timeout_s + 1)
