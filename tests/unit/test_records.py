"""One record per concept: the JSON that detect's log and events, the webhook, predict and the API write is
valid against the records' published JSON schema (docs/records.md), and that document is current."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from PIL import Image

from facemask import cli
from facemask.inference.classifier import load_classifier
from facemask.inference.events import EventSink, Webhook
from facemask.inference.records import EventRecord, FaceRecord, FrameRecord, Prediction
from facemask.inference.tracking import PeopleOptions
from facemask.vision.crops import FaceCropper
from tests.synthetic import face
from tests.unit.test_tracking import BlobFaces, receiver, scene, write_walk  # noqa: F401 (the fixture)

ROOT = Path(__file__).resolve().parents[2]


def valid(record: type, instance: object) -> None:
    jsonschema.validate(instance, record.model_json_schema())


def test_the_schema_document_is_current() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/records_schema.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_a_record_off_its_schema_fails() -> None:
    """The check can fail: a face without its box, an event with a string for frames."""
    with pytest.raises(jsonschema.ValidationError, match="'box' is a required property"):
        valid(
            FaceRecord,
            {
                "label": "WithMask",
                "p_mask": 0.9,
                "confidence": 0.9,
                "tag": "mask 90%",
                "crop": [],
                "score": 1,
            },
        )
    with pytest.raises(jsonschema.ValidationError):
        valid(EventRecord, {"frames": "many"})


def test_detect_log_events_and_webhook_follow_the_schema(
    tmp_path: Path,
    models: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    receiver,  # noqa: F811
) -> None:
    monkeypatch.setattr(cli, "make_cropper", lambda args, classifier: FaceCropper(BlobFaces(), 0.1))
    url = f"http://127.0.0.1:{receiver.server_port}/events"
    out = tmp_path / "out.mp4"
    argv = [
        "detect",
        str(models["onnx"]),
        "--source",
        str(write_walk(tmp_path / "walk.mp4")),
        "--output",
        str(out),
    ]
    assert cli.main([*argv, "--track-patience", "0.1", "--webhook", url, "--camera", "door-1"]) == 0
    frames = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    events = [json.loads(line) for line in out.with_suffix(".events.jsonl").read_text().splitlines()]
    assert len(frames) == 30 and len(events) == 2 and len(receiver.received) == 2
    for frame in frames:
        valid(FrameRecord, frame)
    assert any(f["person"] for frame in frames for f in frame["faces"]), "faces carry their people"
    for event in events + receiver.received:
        valid(EventRecord, event)
        assert event["camera"] == "door-1"


def test_predict_json_follows_the_schema(
    tmp_path: Path, models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    Image.fromarray(face(True, np.random.default_rng(0))).save(tmp_path / "a.png")
    Image.fromarray(np.full((64, 64), 0, np.uint8)).save(tmp_path / "dark.png")
    assert cli.main(["predict", str(models["onnx"]), str(tmp_path), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    for row in rows:
        valid(Prediction, row)


def test_the_api_follows_the_schema(models: dict[str, Path], receiver) -> None:  # noqa: F811
    from fastapi import UploadFile

    from facemask.web.entrance import Entrance
    from facemask.web.server import create_app

    classifier, cropper = load_classifier(models["onnx"]), FaceCropper(BlobFaces(), 0.0)
    sink = EventSink(webhook=Webhook(f"http://127.0.0.1:{receiver.server_port}/"))
    entrance = Entrance(classifier, cropper, PeopleOptions(patience=0.4, event_after=None), sink)
    app = create_app(classifier, cropper, entrance=entrance)
    endpoints = {route.path: route.endpoint for route in app.routes if hasattr(route, "endpoint")}

    def upload(frame: np.ndarray):
        return UploadFile(io.BytesIO(cv2.imencode(".png", frame)[1].tobytes()), filename="frame.png")

    photo = asyncio.run(endpoints["/api/predict"](upload(scene([(40, 100)])))).model_dump(mode="json")
    live = [
        asyncio.run(
            endpoints["/api/live"](upload(scene([(40 + 10 * i, 100)] if i < 5 else [])), False, "webcam")
        )
        for i in range(10)
    ]
    answers = [out.model_dump(mode="json") for out in live]
    assert photo["faces"] and sum(len(a["events"]) for a in answers) == 1
    for face_json in photo["faces"] + [f for a in answers for f in a["faces"]]:
        valid(FaceRecord, face_json)
    for event in [e for a in answers for e in a["events"]] + endpoints["/api/events"](0).model_dump(
        mode="json"
    )["events"]:
        valid(EventRecord, event)
    sink.close()
    (posted,) = receiver.received
    valid(EventRecord, posted)
