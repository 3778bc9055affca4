"""``facemask serve``: the JSON API and the operator console (photos, a browser's camera, the doors).

``POST /api/predict`` takes one image (multipart field ``image``) and returns every face with its box,
label and P(mask); ``POST /api/live?camera=NAME`` is a browser camera's next frame, its faces tracked into
people; the cameras the server reads itself (``Entrance``) run for the app's lifespan. OpenAPI at ``/docs``
and ``/openapi.json``. Bad requests get a 4xx with a one-line ``detail``; inference runs one frame or request
at a time (the detector is not thread-safe).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from facemask.inference.classifier import Classifier
from facemask.inference.frames import FrameResult, classify_frame
from facemask.inference.realtime import annotate
from facemask.inference.records import EventRecord, FaceRecord
from facemask.vision.crops import FaceCropper
from facemask.vision.images import ImageError, load_frame
from facemask.web.entrance import Door, DoorRefused, Entrance

log = logging.getLogger("facemask.serve")

BROWSER_CAMERA = "webcam"  # the door a browser's frames go to when it names none
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


class PredictOut(BaseModel):
    width: int
    height: int
    threshold: float
    faces: list[FaceRecord]
    milliseconds: float


class LiveOut(PredictOut):
    """A camera frame: its faces with their people, and the entrance events this frame completed."""

    camera: str
    events: list[EventRecord]


class CameraStats(BaseModel):
    """One door since the server started: frames seen, people by voted label and per minute."""

    source: (
        str  # "browser" (frames posted to /api/live) or the stream/file the server reads, without password
    )
    status: str  # browser | live | reconnecting | ended
    frames: int
    people: dict[str, int]
    per_minute: list[dict]


class Stats(BaseModel):
    """Every door together, and each by name."""

    frames: int
    people: dict[str, int]
    cameras: dict[str, CameraStats]


class RecentEvents(BaseModel):
    """Events since ``after`` (``/api/events?after=N``), oldest first; ask again with ``after=next``."""

    next: int
    events: list[EventRecord]


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
    # One thread decodes and infers, a request or a camera frame at a time: the detector is not thread-safe,
    # and the memory of a decoded photo is reused by the next one (decoded in pool threads, each thread's
    # allocator kept its own: 8 uploads of 24 megapixels held 2 GB).
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
    too_large = f"Photo too large: at most {max_upload / 2**20:g} MB"
    entrance = entrance or Entrance(classifier, cropper)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        """The cameras the server reads run while it serves; when it stops, every camera's open tracks
        become events and the webhook drains (the last people at the doors are not lost)."""
        entrance.start(worker)
        yield
        counts = await asyncio.get_running_loop().run_in_executor(None, entrance.close, worker)
        log.warning("stopped: %s", json.dumps(counts))
        worker.shutdown()

    app = FastAPI(title="facemask", summary="Mask / no mask for every face in a photo", lifespan=lifespan)

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

    def decode(name: str, data: bytes) -> np.ndarray:
        try:
            return load_frame(name, data, max_pixels, UPLOAD_SIDE)
        except ImageError as err:
            raise refusal(err, name, max_pixels) from None

    def faces(frame: np.ndarray, result: FrameResult, start: float) -> dict:
        return {
            "width": frame.shape[1],
            "height": frame.shape[0],
            "threshold": classifier.threshold,
            "faces": result.records(),
            "milliseconds": round((time.perf_counter() - start) * 1000, 1),
        }

    def analyse(name: str, data: bytes) -> PredictOut:
        start, frame = time.perf_counter(), decode(name, data)
        return PredictOut(**faces(frame, classify_frame(frame, cropper, classifier), start))

    def analyse_live(name: str, data: bytes, door: Door, blur: bool) -> LiveOut:
        start, frame = time.perf_counter(), decode(name, data)
        result, events = entrance.see(door, frame, time.perf_counter() - door.started, blur)
        return LiveOut(**faces(frame, result, start), camera=door.session.name, events=events)

    async def on_worker(function, image: UploadFile, *args):
        data = await image.read(max_upload + 1)
        if len(data) > max_upload:
            raise HTTPException(413, too_large)
        name = image.filename or "upload"
        return await asyncio.get_running_loop().run_in_executor(worker, function, name, data, *args)

    @app.post("/api/predict", responses={400: {}, 413: {}, 415: {}})
    async def predict(
        image: Annotated[UploadFile, File(description="a photo: JPEG, PNG, WebP, BMP...")],
    ) -> PredictOut:
        return await on_worker(analyse, image)

    @app.post("/api/live", responses={400: {}, 409: {}, 413: {}, 415: {}, 429: {}})
    async def live(
        image: Annotated[UploadFile, File(description="the camera's next frame")],
        blur: Annotated[bool, Form(description="blur the faces of the events' thumbnails")] = False,
        camera: Annotated[str, Query(description="the door this browser watches")] = BROWSER_CAMERA,
    ) -> LiveOut:
        try:
            door = entrance.browser_door(camera)
        except DoorRefused as err:
            raise HTTPException(err.status, str(err)) from None
        return await on_worker(analyse_live, image, door, blur)

    @app.get("/api/stats")
    def stats() -> Stats:
        return Stats(**entrance.stats())

    @app.get("/api/events")
    def events(
        after: Annotated[int, Query(ge=0, description="the last event seen: next")] = 0,
    ) -> RecentEvents:
        following, recent = entrance.recent(after)
        return RecentEvents(next=following, events=recent)

    @app.get("/api/cameras/{name}/frame.jpg", responses={404: {}}, response_class=Response)
    def latest_frame(name: str) -> Response:
        """The camera's latest frame with its faces and people drawn, for the console."""
        door = entrance.doors.get(name)
        if door is None or door.latest is None:
            raise HTTPException(404, f"no frame from camera {name} yet")
        frame, result = door.latest
        jpeg = cv2.imencode(".jpg", annotate(frame, result, blurred=door.session.blurred))[1]
        return Response(jpeg.tobytes(), media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def refusal(err: ImageError, name: str, max_pixels: int) -> HTTPException:
    """The 4xx for an upload that cannot be used, worded for the operator (the file named at the end)."""
    if err.reason == "too_large":
        return HTTPException(413, f"Photo too large: at most {max_pixels / 1e6:g} megapixels ({name})")
    status, words = OPERATOR_WORDS.get(err.reason, OPERATOR_WORDS["corrupt"])
    return HTTPException(status, f"{words} ({name})")
