"""One frame's faces: detected, cropped, classified in one batch, and (at a camera) each one's person.

``FrameResult`` is the record passed between the frame pipeline's small tools, as supervision passes its
``Detections``: the classifier fills the faces, a ``PersonTracker`` their people, ``annotate`` and the
records read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facemask.inference.classifier import Classifier, labels_for
from facemask.inference.records import FaceRecord, PersonRecord, Verdict
from facemask.vision.crops import FaceCropper
from facemask.vision.faces import Face


@dataclass
class FrameResult:
    """The faces of one frame: detections, the region each crop was cut from, labels, P(WithMask), and the
    person each face belongs to (None until a tracker says, and on a track's first frame)."""

    faces: list[Face]
    crops: list[tuple[int, int, int, int]]
    labels: list[str]
    probs: np.ndarray
    threshold: float
    people: list[PersonRecord | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.people = self.people or [None] * len(self.faces)

    def records(self) -> list[FaceRecord]:
        return [
            FaceRecord(
                box=[round(v, 1) for v in face.box],
                crop=list(crop),
                score=round(face.score, 4),
                person=person,
                **Verdict.of(label, float(p), self.threshold),
            )
            for face, crop, label, p, person in zip(
                self.faces, self.crops, self.labels, self.probs, self.people, strict=True
            )
        ]


def classify_frame(frame: np.ndarray, cropper: FaceCropper, classifier: Classifier) -> FrameResult:
    """Every face of one frame, classified in one batch."""
    faces, crops = cropper(frame)
    probs = classifier.predict_proba(crops)
    boxes = [cropper.box(face, frame.shape) for face in faces]
    return FrameResult(faces, boxes, labels_for(classifier, probs), probs, classifier.threshold)
