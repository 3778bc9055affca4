"""People across frames: faces linked into tracks, and one label per person voted over its last frames.

Tracking is the ``trackers`` package's ByteTrack (Roboflow's, the ByteTrack that supervision carried until 0.26
and moved there): Kalman-predicted boxes matched by IoU, in two stages so that a weak detection (a turned
head) still continues its track. Chosen over norfair, whose last release pins numpy < 2 and rich < 15, older
than this project's; ByteTrack needs no appearance model and no torch. Free of CLI and IO concerns, so
that ``detect`` and the web server's live mode share it.

The vote: a person's label is the decision rule applied to the mean P(mask) of its last ``vote_frames``
frames, with hysteresis: it flips only when that mean crosses the threshold by ``hysteresis``, so one bad
frame (a hand over the mouth, motion blur) does not flip it, a sustained change does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from facemask.decision import confidence, is_mask, tag
from facemask.inference.realtime import FrameResult

#: ByteTrack's patience: frames (at 30 FPS; scaled to the source's rate) a track survives unseen.
PATIENCE = 30
THUMBNAIL_SIZE = 64  # pixels, the longer side of an event's face thumbnail


def vote(
    label: str | None, mean: float, threshold: float, hysteresis: float, classes: tuple[str, ...]
) -> str:
    """The label after a frame: the rule on ``mean``, except that a held ``label`` changes only when the mean
    is past the threshold by ``hysteresis`` (kept inside (0, 1) so either label can still be reached)."""
    without, with_mask = classes
    if label is None:
        return classes[int(is_mask(mean, threshold))]
    if label == without:
        return with_mask if is_mask(mean, min(threshold + hysteresis, (threshold + 1) / 2)) else without
    return with_mask if is_mask(mean, max(threshold - hysteresis, threshold / 2)) else without


@dataclass
class Person:
    """One track: when it was seen, its last ``vote_frames`` P(mask), its voted label, its best face."""

    id: int
    first_frame: int
    first_time: float
    threshold: float
    classes: tuple[str, ...]
    probs: deque[float]
    last_frame: int = 0
    last_time: float = 0.0
    frames: int = 0
    label: str | None = None
    thumbnail: np.ndarray | None = field(default=None, repr=False)
    best_score: float = -1.0
    reported: bool = False

    @property
    def p_mask(self) -> float:
        """Mean P(mask) of the last frames, the vote's input."""
        return float(np.mean(self.probs))

    @property
    def confidence(self) -> float:
        """How sure the voted label is (``decision.confidence`` of the mean). Inside the hysteresis band the
        held label can be on the mean's other side: then under 50%, saying it is held, not decided."""
        sureness = confidence(self.p_mask, self.threshold)
        decided = self.classes[int(is_mask(self.p_mask, self.threshold))]
        return sureness if self.label == decided else 1 - sureness

    @property
    def tag(self) -> str:
        """``#3 mask 91%``: the id and the voted decision, as boxes show it."""
        return f"#{self.id} {tag(self.label, self.confidence)}"

    def see(self, frame: int, seconds: float, p: float, hysteresis: float) -> None:
        self.last_frame, self.last_time, self.frames = frame, seconds, self.frames + 1
        self.probs.append(p)
        self.label = vote(self.label, self.p_mask, self.threshold, hysteresis, self.classes)

    def keep_face(self, image: np.ndarray, box: tuple[int, int, int, int], score: float) -> None:
        """The detector's surest face so far, as a small thumbnail for the person's event."""
        if score <= self.best_score:
            return
        left, top, right, bottom = box
        crop = image[top:bottom, left:right]
        scale = THUMBNAIL_SIZE / max(crop.shape[:2])
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        self.thumbnail, self.best_score = cv2.resize(crop, size, interpolation=cv2.INTER_AREA), score


class PersonTracker:
    """Faces of successive frames -> people with ids and voted labels; people due an event.

    ``update`` once per frame; ``due`` then gives each person once: when its track ends (unseen for the
    tracker's patience) or when it has been seen ``event_after`` frames, whichever comes first; ``flush``
    gives the ones left at the end of the stream.
    """

    def __init__(
        self,
        threshold: float,
        classes: tuple[str, ...],
        vote_frames: int = 15,
        hysteresis: float = 0.05,
        event_after: int | None = None,
        fps: float = 30.0,
        patience: int = PATIENCE,
    ) -> None:
        from trackers import ByteTrackTracker  # ~1 s to import (supervision): only when tracking

        self.threshold, self.classes = threshold, classes
        self.vote_frames, self.hysteresis, self.event_after = vote_frames, hysteresis, event_after
        self.tracker = ByteTrackTracker(
            lost_track_buffer=patience,
            frame_rate=fps,
            track_activation_threshold=0.5,  # detector's scores: tracks for every face CenterFace keeps
            minimum_consecutive_frames=1,
        )
        self.people: dict[int, Person] = {}

    def update(
        self, result: FrameResult, frame: np.ndarray, index: int, seconds: float
    ) -> list[Person | None]:
        """The person of each face of ``result`` (None while a new track is unconfirmed: its first frame)."""
        import supervision as sv

        boxes = np.array([face.box for face in result.faces], np.float32).reshape(-1, 4)
        scores = np.array([face.score for face in result.faces], np.float32)
        tracked = self.tracker.update(
            sv.Detections(xyxy=boxes, confidence=scores, data={"face": np.arange(len(boxes))})
        )
        persons: list[Person | None] = [None] * len(result.faces)
        for face_index, track in zip(tracked.data.get("face", []), tracked.tracker_id, strict=True):
            if track >= 0:
                persons[face_index] = self._see(
                    int(track) + 1, result, int(face_index), frame, index, seconds
                )
        return persons

    def _see(
        self, track: int, result: FrameResult, face: int, frame: np.ndarray, index: int, seconds: float
    ) -> Person:
        person = self.people.get(track)
        if person is None:
            person = Person(
                track, index, seconds, self.threshold, self.classes, deque(maxlen=self.vote_frames)
            )
            self.people[track] = person
        person.see(index, seconds, float(result.probs[face]), self.hysteresis)
        person.keep_face(frame, result.crops[face], result.faces[face].score)
        return person

    def due(self) -> list[Person]:
        """People whose event is due now: track ended, or seen ``event_after`` frames. Each once."""
        alive = {track.tracker_id + 1 for track in self.tracker.tracks}
        ready = [
            person
            for track, person in self.people.items()
            if track not in alive or (self.event_after is not None and person.frames >= self.event_after)
        ]
        return self._report(ready)

    def flush(self) -> list[Person]:
        """Everyone not yet reported: the end of the stream ends every track."""
        return self._report(list(self.people.values()))

    def _report(self, people: list[Person]) -> list[Person]:
        """Marks ``people`` reported; forgets those whose track ended (their id never comes back)."""
        alive = {track.tracker_id + 1 for track in self.tracker.tracks}
        fresh = [person for person in people if not person.reported]
        for person in people:
            person.reported = True
            if person.id not in alive:
                del self.people[person.id]
        return fresh
