"""People across frames: faces linked into tracks, and one label per person voted over its last frames.

Tracking is the ``trackers`` package's ByteTrack (Roboflow's, the ByteTrack that supervision carried until 0.26
and moved there): Kalman-predicted boxes matched by IoU, in two stages so that a weak detection (a turned
head) still continues its track. Chosen over norfair, whose last release pins numpy < 2 and rich < 15, older
than this project's; ByteTrack needs no appearance model and no torch. Free of CLI and IO concerns:
``CameraSession`` runs it for ``detect`` and for each of ``serve``'s cameras.

The vote: a person's label is the decision rule applied to the mean P(mask) of its last ``vote_frames``
frames, with hysteresis: it flips only when that mean crosses the threshold by ``hysteresis``, so one bad
frame (a hand over the mouth, motion blur) does not flip it, a sustained change does.

Times are in seconds, not frames, so that one default means the same at a 30 FPS video and at a browser that
posts 5 frames a second.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from facemask.decision import confidence, is_mask
from facemask.errors import FacemaskError
from facemask.inference.frames import FrameResult
from facemask.inference.records import PersonRecord, Verdict

THUMBNAIL_SIZE = 64  # pixels, the longer side of an event's face thumbnail


@dataclass(frozen=True)
class PeopleOptions:
    """How faces become people and people become events: the one owner of these defaults, which detect and
    serve both expose as flags (``--vote-frames``, ``--hysteresis``, ``--track-patience``, ``--event-after``)."""

    vote_frames: int = 15  # a person's label: the mean P(mask) of its last N frames
    hysteresis: float = 0.05  # the label flips only when that mean is this far past the threshold
    patience: float = 1.5  # seconds a person may go unseen before the track ends
    event_after: float | None = 3.0  # seconds: a person's event then, or when its track ends if sooner

    def __post_init__(self) -> None:
        if self.vote_frames < 1:
            raise FacemaskError(f"--vote-frames {self.vote_frames}: needs at least 1 frame")
        if not 0 <= self.hysteresis < 0.5:
            raise FacemaskError(f"--hysteresis {self.hysteresis}: a margin of P(mask), 0 to 0.5")
        if self.patience < 0:
            raise FacemaskError(f"--track-patience {self.patience}: seconds, 0 or more")
        if self.event_after is not None and self.event_after <= 0:
            raise FacemaskError(f"--event-after {self.event_after}: seconds, more than 0")


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

    def record(self) -> PersonRecord:
        """The person as a face's record and the API carry it (its event adds times and the thumbnail)."""
        return PersonRecord(
            id=self.id, **Verdict.of(self.label, self.p_mask, self.threshold, self.confidence)
        )

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

    ``update`` once per frame; ``due`` then gives each person once: when its track ends (unseen for
    ``options.patience`` seconds) or when it has been in view ``options.event_after`` seconds, whichever comes
    first; ``flush`` gives the ones left at the end of the stream. ``fps``: the rate frames arrive at.
    """

    def __init__(
        self,
        threshold: float,
        classes: tuple[str, ...],
        options: PeopleOptions | None = None,
        fps: float = 30.0,
    ) -> None:
        from trackers import ByteTrackTracker  # ~1 s to import (supervision): only when tracking

        self.threshold, self.classes, self.options = threshold, classes, options or PeopleOptions()
        # ByteTrack counts its buffer in frames at 30 FPS and scales it by frame_rate: patience in seconds
        self.tracker = ByteTrackTracker(
            lost_track_buffer=round(self.options.patience * 30),
            frame_rate=fps,
            track_activation_threshold=0.5,  # detector's scores: tracks for every face CenterFace keeps
            minimum_consecutive_frames=1,
        )
        self.people: dict[int, Person] = {}

    def update(
        self, result: FrameResult, frame: np.ndarray, index: int, seconds: float
    ) -> list[PersonRecord | None]:
        """The person of each face of ``result`` (None while a new track is unconfirmed: its first frame), also
        set as ``result.people``."""
        import supervision as sv

        boxes = np.array([face.box for face in result.faces], np.float32).reshape(-1, 4)
        scores = np.array([face.score for face in result.faces], np.float32)
        tracked = self.tracker.update(
            sv.Detections(xyxy=boxes, confidence=scores, data={"face": np.arange(len(boxes))})
        )
        people: list[PersonRecord | None] = [None] * len(result.faces)
        for face_index, track in zip(tracked.data.get("face", []), tracked.tracker_id, strict=True):
            if track >= 0:
                person = self._see(int(track) + 1, result, int(face_index), frame, index, seconds)
                people[face_index] = person.record()
        result.people = people
        return people

    def _see(
        self, track: int, result: FrameResult, face: int, frame: np.ndarray, index: int, seconds: float
    ) -> Person:
        person = self.people.get(track)
        if person is None:
            person = Person(
                track, index, seconds, self.threshold, self.classes, deque(maxlen=self.options.vote_frames)
            )
            self.people[track] = person
        person.see(index, seconds, float(result.probs[face]), self.options.hysteresis)
        person.keep_face(frame, result.crops[face], result.faces[face].score)
        return person

    def due(self) -> list[Person]:
        """People whose event is due now: track ended, or in view ``event_after`` seconds. Each once."""
        alive, after = self._alive(), self.options.event_after
        ready = [
            person
            for track, person in self.people.items()
            if track not in alive or (after is not None and person.last_time - person.first_time >= after)
        ]
        return self._report(ready)

    def flush(self) -> list[Person]:
        """Everyone not yet reported: the end of the stream ends every track."""
        return self._report(list(self.people.values()))

    def _alive(self) -> set[int]:
        return {track.tracker_id + 1 for track in self.tracker.tracks}

    def _report(self, people: list[Person]) -> list[Person]:
        """Marks ``people`` reported; forgets those whose track ended (their id never comes back)."""
        alive = self._alive()
        fresh = [person for person in people if not person.reported]
        for person in people:
            person.reported = True
            if person.id not in alive:
                del self.people[person.id]
        return fresh
