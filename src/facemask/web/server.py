"""``facemask serve``: the JSON API and the page (upload photos, or the browser's webcam live).

``POST /api/predict`` takes one image (multipart field ``image``) and returns every face with its box,
label and P(mask); the page draws them. OpenAPI at ``/docs`` and ``/openapi.json``. Bad requests get a
4xx with a one-line ``detail``; inference runs one request at a time (the detector is not thread-safe).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from facemask.inference.classifier import Classifier
from facemask.inference.events import EventSink, Webhook
from facemask.inference.realtime import FrameResult, classify_frame
from facemask.vision.crops import FaceCropper
from facemask.vision.images import ImageError, load_frame

STATIC = Path(str(files("facemask.web") / "static"))
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024
#: The most pixels an upload may have: a 12-megapixel phone photo or a 4K camera frame fits, and 16 megapixels
#: decode in about 110 MB; larger ones (and PNG "bombs" that compress 1.7 GB of pixels into 0.5 MB) are
#: refused from their header with a 413.
DEFAULT_MAX_PIXELS = 16_000_000
#: JPEG uploads decode at 1/2, 1/4 or 1/8 scale while their longer side stays at least this (Pillow's draft
#: mode): the detector sees 320 px and a face needs 28, so a 12-megapixel photo loses nothing but memory.
UPLOAD_SIDE = 1920
#: What the page shows for a photo it cannot use, in the operator's words.
OPERATOR_WORDS = {
    "empty": (400, "This file is empty"),
    "not_image": (415, "This file is not a photo"),
    "corrupt": (415, "This photo is damaged or incomplete"),
}


class FaceOut(BaseModel):
    """One classified face: ``FrameResult.face_records`` as the API documents it."""

    box: list[float]  # the detector's box x1, y1, x2, y2 in image pixels
    crop: list[int]  # the region the classifier saw (box + margin)
    score: float
    label: str
    p_mask: float
    confidence: float  # of the decision: 0.5 at the threshold, 1 at p_mask 1 (mask) or 0 (no mask)
    tag: str  # the decision and its confidence as the page shows it, e.g. "no mask 93%"


class LiveFaceOut(FaceOut):
    """A camera frame's face with the person it belongs to (None on a track's first frame)."""

    track: int | None = None
    person_label: str | None = None
    person_p_mask: float | None = None
    person_confidence: float | None = None
    person_tag: str | None = None


class PredictOut(BaseModel):
    width: int
    height: int
    threshold: float
    faces: list[FaceOut]
    milliseconds: float


class LiveOut(PredictOut):
    """A camera frame: its faces with their people, and the entrance events this frame completed."""

    faces: list[LiveFaceOut]
    events: list[dict]


class Stats(BaseModel):
    """The entrance since the server started: people by voted label, per minute, frames seen."""

    frames: int
    people: dict[str, int]
    per_minute: list[dict]


class Health(BaseModel):
    status: str
    model: str
    threshold: float
    margin: float  # the crop margin faces are cut with (the model's own, or the --margin override)
    classes: list[str]


def create_app(
    classifier: Classifier,
    cropper: FaceCropper,
    model_name: str = "",
    max_upload: int = DEFAULT_MAX_UPLOAD,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    entrance: Entrance | None = None,
) -> FastAPI:
    app = FastAPI(title="facemask", summary="Mask / no mask for every face in a photo")
    # One thread decodes and infers, a request at a time: the detector is not thread-safe, and the memory of
    # a decoded photo is reused by the next one (decoded in pool threads, each thread's allocator kept its
    # own: 8 uploads of 24 megapixels held 2 GB).
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
    too_large = f"Photo too large: at most {max_upload / 2**20:g} MB"
    entrance = entrance or Entrance()

    @app.middleware("http")
    async def limit_upload(request: Request, call_next):
        """Refuse an oversized body from its Content-Length, before reading it."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_upload:
            return JSONResponse({"detail": too_large}, 413)
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/health")
    def health() -> Health:
        return Health(
            status="ok",
            model=model_name,
            threshold=classifier.threshold,
            margin=cropper.margin,
            classes=list(classifier.classes),
        )

    def analyse(name: str, data: bytes, live: bool = False, blur: bool = False) -> PredictOut:
        """A photo (or, ``live``, the entrance camera's next frame: faces tracked into people)."""
        start = time.perf_counter()
        try:
            frame = load_frame(name, data, max_pixels, UPLOAD_SIDE)
        except ImageError as err:
            raise refusal(err, name, max_pixels) from None
        result = classify_frame(frame, cropper, classifier)
        persons, events = entrance.see(result, frame, classifier, blur) if live else (None, [])
        out = {
            "width": frame.shape[1],
            "height": frame.shape[0],
            "threshold": classifier.threshold,
            "faces": result.face_records(persons),  # validated as FaceOut, or LiveFaceOut with the person
            "milliseconds": round((time.perf_counter() - start) * 1000, 1),
        }
        return LiveOut(**out, events=events) if live else PredictOut(**out)

    async def analysed(image: UploadFile, live: bool = False, blur: bool = False) -> PredictOut:
        data = await image.read(max_upload + 1)
        if len(data) > max_upload:
            raise HTTPException(413, too_large)
        name = image.filename or "upload"
        return await asyncio.get_running_loop().run_in_executor(worker, analyse, name, data, live, blur)

    @app.post("/api/predict", responses={400: {}, 413: {}, 415: {}})
    async def predict(
        image: Annotated[UploadFile, File(description="a photo: JPEG, PNG, WebP, BMP...")],
    ) -> PredictOut:
        return await analysed(image)

    @app.post("/api/live", responses={400: {}, 413: {}, 415: {}})
    async def live(
        image: Annotated[UploadFile, File(description="the entrance camera's next frame")],
        blur: Annotated[bool, Form(description="blur the faces of the events' thumbnails")] = False,
    ) -> LiveOut:
        return await analysed(image, live=True, blur=blur)

    @app.get("/api/stats")
    def stats() -> Stats:
        counter = entrance.sink.counter
        return Stats(frames=entrance.frames, people=counter.totals(), per_minute=counter.per_minute())

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


@dataclass
class Entrance:
    """The camera at the door (``/api/live``): its frames' faces tracked into people, a label voted per person,
    one event each (counted for ``/api/stats``, posted to ``webhook``). The page sends a few frames a second,
    so a track ends after ``patience`` frames unseen (2 s at 5 per second) and an event is due after
    ``event_after`` frames (5 s), whichever first."""

    webhook: str | None = None
    fps: float = 5.0
    patience: int = 10
    event_after: int = 25
    frames: int = 0
    started: float = field(default_factory=time.perf_counter)
    tracker: Any = None  # a PersonTracker from the first frame on (importing it takes a second)
    sink: EventSink = field(init=False)

    def __post_init__(self) -> None:
        self.sink = EventSink(webhook=Webhook(self.webhook) if self.webhook else None)

    def see(
        self, result: FrameResult, frame: np.ndarray, classifier: Classifier, blur: bool
    ) -> tuple[list, list[dict]]:
        """The person of each face of the next frame, and the events it completes."""
        if self.tracker is None:
            from facemask.inference.tracking import PersonTracker

            self.tracker = PersonTracker(
                classifier.threshold, classifier.classes, event_after=self.event_after, fps=self.fps,
                patience=self.patience,
            )  # fmt: skip
        persons = self.tracker.update(result, frame, self.frames, time.perf_counter() - self.started)
        self.frames += 1
        self.sink.blurred = blur
        return persons, self.sink.emit(self.tracker.due())


def refusal(err: ImageError, name: str, max_pixels: int) -> HTTPException:
    """The 4xx for an upload that cannot be used, worded for the operator (the file named at the end)."""
    if err.reason == "too_large":
        return HTTPException(413, f"Photo too large: at most {max_pixels / 1e6:g} megapixels ({name})")
    status, words = OPERATOR_WORDS.get(err.reason, OPERATOR_WORDS["corrupt"])
    return HTTPException(status, f"{words} ({name})")
