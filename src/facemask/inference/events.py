"""Entrance events: one record per person (``--events``, ``EventRecord``), counts per minute, and a webhook.

An event carries its face thumbnail inline, a base64 JPEG (64 px, ~2 KB): one self-contained line that a
webhook receiver or the log's reader takes as it is, with no file beside the log to keep in step.
The webhook posts from a background thread through a bounded queue, so a slow or dead receiver never holds
up the frame loop: when the queue is full an event is dropped and counted.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import cv2

from facemask.errors import FacemaskError
from facemask.inference.logfiles import JsonLines
from facemask.inference.records import EventRecord
from facemask.inference.tracking import Person
from facemask.vision.blur import blur


def event_record(person: Person, camera: str, blurred: bool = False) -> EventRecord:
    """The person's event: its voted verdict, first/last frame and seconds, frames seen, thumbnail."""
    thumbnail = None
    if person.thumbnail is not None:
        face = blur(person.thumbnail.copy()) if blurred else person.thumbnail
        thumbnail = base64.b64encode(cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]).decode()
    return EventRecord(
        **person.record().model_dump(),
        camera=camera,
        first_frame=person.first_frame,
        last_frame=person.last_frame,
        first_time=round(person.first_time, 3),
        last_time=round(person.last_time, 3),
        frames=person.frames,
        thumbnail_jpeg=thumbnail,
    )


class EventCounter:
    """People per label and per minute since the start (by an event's ``first_time``); thread-safe, so a
    server can read it while a loop adds to it."""

    def __init__(self) -> None:
        self._minutes: dict[int, Counter] = {}
        self._lock = threading.Lock()

    def add(self, event: EventRecord) -> None:
        with self._lock:
            self._minutes.setdefault(int(event.first_time // 60), Counter())[event.label] += 1

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(sum(self._minutes.values(), Counter()))

    def per_minute(self) -> list[dict]:
        """``[{"minute": 0, "WithMask": 3, "WithoutMask": 1}, ...]``, minutes with people only."""
        with self._lock:
            return [{"minute": minute, **self._minutes[minute]} for minute in sorted(self._minutes)]


def check_url(url: str) -> None:
    """A webhook is an http(s) URL with a host: anything else would only fail, silently, at every event."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FacemaskError(f"--webhook {url}: not an http:// or https:// URL")


@dataclass
class Webhook:
    """POSTs events as JSON to ``url`` from a background thread: ``retries`` more tries after a failure,
    waiting ``backoff`` seconds, doubling each time. ``send`` never blocks; ``close`` waits at most
    ``drain_s`` for the queue to empty."""

    url: str
    queue_size: int = 256
    retries: int = 3
    backoff: float = 0.5
    timeout: float = 5.0
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    _queue: queue.Queue = field(init=False, repr=False)
    _thread: threading.Thread = field(init=False, repr=False)
    _stop: threading.Event = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_url(self.url)
        self._queue, self._stop = queue.Queue(self.queue_size), threading.Event()
        self._thread = threading.Thread(target=self._work, name="facemask-webhook", daemon=True)
        self._thread.start()

    def send(self, event: EventRecord | dict) -> bool:
        """Queues ``event``; False (and counted as dropped) when the queue is full."""
        try:
            self._queue.put_nowait(
                event.model_dump_json() if isinstance(event, EventRecord) else json.dumps(event)
            )
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def close(self, drain_s: float = 5.0) -> None:
        """Lets the queue empty for up to ``drain_s``; what is left then is counted as dropped."""
        deadline = time.monotonic() + drain_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 0.1)
        self.dropped += self._queue.qsize()

    def stats(self) -> dict:
        return {"url": self.url, "sent": self.sent, "failed": self.failed, "dropped": self.dropped}

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if self._post(event):
                self.sent += 1
            else:
                self.failed += 1
            self._queue.task_done()

    def _post(self, event: str) -> bool:
        body = event.encode()
        for attempt in range(self.retries + 1):
            if attempt and self._stop.wait(self.backoff * 2 ** (attempt - 1)):
                return False
            request = urllib.request.Request(
                self.url, body, {"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if response.status < 300:
                        return True
            except (urllib.error.URLError, OSError, ValueError):
                continue
        return False


class EventSink:
    """Where events go: a JSON-lines file and a webhook, shared by every camera of a process."""

    def __init__(self, log: JsonLines | None = None, webhook: Webhook | None = None) -> None:
        self.log, self.webhook = log, webhook

    def write(self, events: list[EventRecord]) -> None:
        for event in events:
            if self.log is not None:
                self.log.write(event)
            if self.webhook is not None:
                self.webhook.send(event)

    def close(self) -> dict:
        """Closes the log, drains the webhook; the webhook's counts for the run's summary."""
        if self.log is not None:
            self.log.close()
        if self.webhook is None:
            return {}
        self.webhook.close()
        return {"webhook": self.webhook.stats()}
