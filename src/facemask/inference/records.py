"""The records the product writes and serves: a face, a person, an event, a frame, a prediction.

Defined once, here, and used as they are by detect's JSON-lines log and events, the HTTP API, the webhook's
payload, ``predict --format json`` and the page, so that a field means one thing everywhere. Their JSON schema
is ``docs/records.md`` (``python scripts/records_schema.py`` writes it; a test keeps it current).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field

from facemask.decision import confidence, tag


class Verdict(BaseModel):
    """A decision as every output shows it: the label, P(WithMask), how sure, and the tag boxes show."""

    label: str = Field(description="WithMask or WithoutMask ('no face' in predict where none was found)")
    p_mask: float | None = Field(description="P(WithMask), rounded to 4 places; null where there is no face")
    confidence: float | None = Field(
        description="of the decision: 0.5 at the threshold, 1 at p_mask 1 (mask) or 0 (no mask)"
    )
    tag: str = Field(description="the decision and its confidence as boxes show it, e.g. 'no mask 93%'")

    @staticmethod
    def of(label: str, p: float, threshold: float, sureness: float | None = None) -> dict:
        """The verdict's fields for P(mask) ``p`` at ``threshold`` (NaN: no face, no confidence); ``sureness``
        where the label is not the rule's own on ``p`` (a person's vote held inside its hysteresis band)."""
        if math.isnan(p):
            return {"label": label, "p_mask": None, "confidence": None, "tag": label}
        sureness = confidence(p, threshold) if sureness is None else sureness
        return {
            "label": label,
            "p_mask": round(p, 4),
            "confidence": round(sureness, 4),
            "tag": tag(label, sureness),
        }


class PersonRecord(Verdict):
    """A person at a camera: the track's id and the label voted over its last frames."""

    id: int = Field(description="the track id, unique within a camera while it runs")


class FaceRecord(Verdict):
    """One classified face of a photo or a frame."""

    box: list[float] = Field(description="the detector's box x1, y1, x2, y2 in image pixels")
    crop: list[int] = Field(description="the region the classifier saw: the box and the model's margin")
    score: float = Field(description="the detector's confidence that this is a face")
    person: PersonRecord | None = Field(
        None, description="at a camera: the face's person (null on a track's first frame and for photos)"
    )


class EventRecord(PersonRecord):
    """A person's entrance event, once per person: when the track ends or after ``--event-after`` seconds."""

    event: Literal["person"] = "person"
    camera: str = Field(description="the camera's name (serve --camera NAME=..., detect's --camera)")
    at: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc), description="when the event was written (UTC)"
    )
    first_frame: int
    last_frame: int
    first_time: float = Field(description="seconds since the camera's start (a video's own time for files)")
    last_time: float
    frames: int = Field(description="frames the person was seen in")
    thumbnail_jpeg: str | None = Field(
        description="the surest face, 64 px, base64 JPEG (blurred with --blur)"
    )


class FrameRecord(BaseModel):
    """One line of detect's log: a frame's faces."""

    camera: str
    frame: int
    source: str = Field(description="the frame's name: file, or stream/video with #index")
    time: float = Field(description="seconds since the start (a video's own time for files)")
    faces: list[FaceRecord]


class Prediction(Verdict):
    """One row of ``facemask predict``: a whole image (``face`` null) or its ``face``-th detected face."""

    file: str
    threshold: float
    face: int | None = None
    box: list[int] | None = None
    crop: list[int] | None = None


RECORDS = (FaceRecord, PersonRecord, EventRecord, FrameRecord, Prediction)
