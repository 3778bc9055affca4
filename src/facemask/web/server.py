"""``facemask serve``: the JSON API and the page (upload photos, or the browser's webcam live).

``POST /api/predict`` takes one image (multipart field ``image``) and returns every face with its box,
label and P(mask); the page draws them. OpenAPI at ``/docs`` and ``/openapi.json``. Bad requests get a
4xx with a one-line ``detail``; inference runs one request at a time (the detector is not thread-safe).
"""

from __future__ import annotations

import threading
import time
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from facemask.inference.classifier import Classifier
from facemask.inference.realtime import classify_frame
from facemask.vision.crops import FaceCropper
from facemask.vision.images import ImageError, load_frame

STATIC = Path(str(files("facemask.web") / "static"))
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024


class FaceOut(BaseModel):
    """One classified face: ``FrameResult.face_records`` as the API documents it."""

    box: list[float]  # the detector's box x1, y1, x2, y2 in image pixels
    crop: list[int]  # the region the classifier saw (box + margin)
    score: float
    label: str
    p_mask: float
    confidence: float  # of the decision: 0.5 at the threshold, 1 at p_mask 1 (mask) or 0 (no mask)
    tag: str  # the decision and its confidence as the page shows it, e.g. "no mask 93%"


class PredictOut(BaseModel):
    width: int
    height: int
    threshold: float
    faces: list[FaceOut]
    milliseconds: float


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
) -> FastAPI:
    app = FastAPI(title="facemask", summary="Mask / no mask for every face in a photo")
    lock = threading.Lock()

    @app.middleware("http")
    async def limit_upload(request: Request, call_next):
        """Refuse an oversized body from its Content-Length, before reading it."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_upload:
            return JSONResponse(
                {"detail": f"upload of {int(length)} bytes exceeds the {max_upload}-byte limit"}, 413
            )
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

    @app.post("/api/predict", responses={400: {}, 413: {}, 415: {}})
    def predict(
        image: Annotated[UploadFile, File(description="a photo: JPEG, PNG, WebP, BMP...")],
    ) -> PredictOut:
        data = image.file.read(max_upload + 1)
        if len(data) > max_upload:
            raise HTTPException(413, f"upload exceeds the {max_upload}-byte limit")
        name = image.filename or "upload"
        try:
            frame = load_frame(name, data)
        except ImageError as err:
            raise HTTPException(400 if not data else 415, str(err)) from None
        start = time.perf_counter()
        with lock:
            result = classify_frame(frame, cropper, classifier)
        faces = [FaceOut(**record) for record in result.face_records()]
        elapsed = (time.perf_counter() - start) * 1000
        return PredictOut(
            width=frame.shape[1],
            height=frame.shape[0],
            threshold=classifier.threshold,
            faces=faces,
            milliseconds=round(elapsed, 1),
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
