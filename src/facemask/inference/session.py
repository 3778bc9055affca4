"""One camera's frame pipeline, the one ``detect`` (a camera a process) and ``serve`` (a session a camera) run:
frame -> faces -> one classifier batch -> people (tracker + vote) -> events. Torch-free.

Each session has its own tracker, people and totals, so that two doors on one PC never mix their people;
the event sink (log file, webhook) may be shared. ``close`` ends every open track as an event: the people
still at the door when the program stops are not lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facemask.inference.classifier import Classifier
from facemask.inference.events import EventCounter, EventSink, event_record
from facemask.inference.frames import FrameResult, classify_frame
from facemask.inference.records import EventRecord
from facemask.inference.tracking import PeopleOptions, Person, PersonTracker
from facemask.vision.crops import FaceCropper


@dataclass
class CameraSession:
    """``see`` each frame of camera ``name`` in order. ``options`` None: faces only, no people (photos);
    ``fps``: the rate frames arrive at; ``blurred``: the events' thumbnails blurred."""

    name: str
    cropper: FaceCropper
    classifier: Classifier
    options: PeopleOptions | None = field(default_factory=PeopleOptions)
    sink: EventSink | None = None
    fps: float = 30.0
    blurred: bool = False
    frames: int = field(default=0, init=False)
    counter: EventCounter = field(default_factory=EventCounter, init=False)
    tracker: PersonTracker | None = field(default=None, init=False)

    def see(self, frame: np.ndarray, seconds: float) -> tuple[FrameResult, list[EventRecord]]:
        """The frame's faces with their people, and the events this frame completed."""
        result = classify_frame(frame, self.cropper, self.classifier)
        events = []
        if self.options is not None:
            if self.tracker is None:
                self.tracker = PersonTracker(
                    self.classifier.threshold, self.classifier.classes, self.options, self.fps
                )
            self.tracker.update(result, frame, self.frames, seconds)
            events = self._emit(self.tracker.due())
        self.frames += 1
        return result, events

    def close(self) -> list[EventRecord]:
        """Every person not yet reported becomes an event now (the sink is the caller's to close)."""
        return self._emit(self.tracker.flush()) if self.tracker is not None else []

    def stats(self) -> dict:
        """Frames seen, people per label and per minute (safe to read from another thread)."""
        return {
            "frames": self.frames,
            "people": self.counter.totals(),
            "per_minute": self.counter.per_minute(),
        }

    def _emit(self, people: list[Person]) -> list[EventRecord]:
        events = [event_record(person, self.name, self.blurred) for person in people]
        for event in events:
            self.counter.add(event)
        if self.sink is not None:
            self.sink.write(events)
        return events
