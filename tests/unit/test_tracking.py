"""People in detect: tracks and ids, the vote with hysteresis, events, the webhook, --blur; on generated frames."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemask import cli
from facemask.inference.classifier import load_classifier
from facemask.inference.events import EventCounter, EventSink, Webhook, event_record
from facemask.inference.frames import FrameResult
from facemask.inference.realtime import annotate, run_detection
from facemask.inference.session import CameraSession
from facemask.inference.sources import open_source
from facemask.inference.tracking import PeopleOptions, PersonTracker, vote
from facemask.vision.crops import FaceCropper
from facemask.vision.faces import Face
from tests.synthetic import face
from tests.unit import test_architecture

CLASSES = ("WithoutMask", "WithMask")
THRESHOLD = 0.6


class BlobFaces:
    """A stand-in detector: every bright blob on the dark background is a face."""

    def __call__(self, frame: np.ndarray) -> list[Face]:
        mask = (frame.max(axis=2) > 30).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [(x, y, x + w, y + h) for x, y, w, h, area in stats[1:count].tolist() if area > 50]
        return [Face(box, 0.9) for box in boxes]


def scene(positions: list[tuple[int, int]], size: int = 40) -> np.ndarray:
    """A 240x320 dark frame with a textured square face at each (x, y)."""
    frame = np.zeros((240, 320, 3), np.uint8)
    rng = np.random.default_rng(0)
    for x, y in positions:
        frame[y : y + size, x : x + size] = cv2.cvtColor(face(True, rng, size), cv2.COLOR_GRAY2BGR)
    return frame


def frame_result(frame: np.ndarray, probs: list[float]) -> FrameResult:
    cropper = FaceCropper(BlobFaces(), margin=0.0)
    faces = cropper.detector(frame)
    crops = [cropper.box(f, frame.shape) for f in faces]
    labels = [CLASSES[int(p > 0.5)] for p in probs]  # any labels: the vote reads probs
    return FrameResult(faces, crops, labels, np.array(probs), THRESHOLD)


def walk(tracker: PersonTracker, positions: list[list[tuple[int, int]]], probs: list[list[float]]):
    """Feeds frames; returns each frame's people as (id, voted label) and each event due as (id, frames)."""
    frames, events = [], []
    for index, (where, p) in enumerate(zip(positions, probs, strict=True)):
        frame = scene(where)
        persons = tracker.update(frame_result(frame, p), frame, index, index / 30)
        frames.append([(person.id, person.label) if person else None for person in persons])
        events += [(person.id, person.frames) for person in tracker.due()]
    return frames, events


def test_a_moving_face_keeps_its_id_and_two_faces_get_two() -> None:
    tracker = PersonTracker(THRESHOLD, CLASSES)
    positions = [[(10 + 4 * i, 20), (200, 100 + 3 * i)] for i in range(20)]
    frames, _ = walk(tracker, positions, [[0.9, 0.1]] * 20)
    assert frames[0] == [None, None], "a track is confirmed on its second frame"
    ids = {tuple(sorted(id for id, _ in persons)) for persons in frames[1:]}
    assert len(ids) == 1 and len(next(iter(ids))) == 2


def test_the_vote_holds_on_an_outlier_and_flips_on_a_sustained_change() -> None:
    assert vote(None, 0.7, THRESHOLD, 0.05, CLASSES) == "WithMask"
    assert vote("WithMask", 0.58, THRESHOLD, 0.05, CLASSES) == "WithMask", "inside the band: held"
    assert vote("WithMask", 0.54, THRESHOLD, 0.05, CLASSES) == "WithoutMask"
    assert vote("WithoutMask", 0.64, THRESHOLD, 0.05, CLASSES) == "WithoutMask"
    assert vote("WithoutMask", 0.66, THRESHOLD, 0.05, CLASSES) == "WithMask"

    tracker = PersonTracker(THRESHOLD, CLASSES, PeopleOptions(vote_frames=5, hysteresis=0.05))
    probs = [0.9] * 6 + [0.0] + [0.9] * 3 + [0.1] * 6  # one bad frame, then a real change
    frames, _ = walk(tracker, [[(10 + 2 * i, 50)] for i in range(16)], [[p] for p in probs])
    labels = [persons[0][1] for persons in frames[1:]]
    assert labels[:9] == ["WithMask"] * 9, "one outlier frame does not flip the person"
    assert labels[-1] == "WithoutMask"
    (person,) = tracker.flush()
    assert person.record().tag == "no mask 92%"


def test_one_event_per_person_at_track_end_or_after_n_frames() -> None:
    # 30 frames a second: patience 3 frames, an event after 9 frames' time (A's 10th frame).
    tracker = PersonTracker(THRESHOLD, CLASSES, PeopleOptions(patience=0.1, event_after=0.29))
    # A stays 12 frames (event on its 10th), B leaves after 4 (event at track end), both then gone for 10.
    positions = [[(10 + 2 * i, 20)] + ([(200, 150)] if i < 4 else []) for i in range(12)] + [[]] * 10
    frames, events = walk(tracker, positions, [[0.9] * len(p) for p in positions])
    a, b = frames[5][0][0], frames[2][1][0]
    assert events == [(b, 3), (a, 10)], "each once: B when its track ended, A after 10 frames"
    assert tracker.flush() == [] and not tracker.people


def test_the_end_of_the_stream_flushes_open_tracks_as_events() -> None:
    tracker = PersonTracker(THRESHOLD, CLASSES)
    walk(tracker, [[(10 + 2 * i, 20)] for i in range(5)], [[0.2]] * 5)
    assert tracker.due() == []
    (person,) = tracker.flush()
    assert (person.first_frame, person.last_frame, person.frames, person.label) == (1, 4, 4, "WithoutMask")


def jpeg(text: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_COLOR)


def test_event_records_and_blurred_thumbnails() -> None:
    tracker = PersonTracker(THRESHOLD, CLASSES)
    walk(tracker, [[(100, 100)]] * 4, [[0.9]] * 4)
    (person,) = tracker.flush()
    event = event_record(person, "door-1")
    assert (event.label, event.tag, event.frames, event.camera) == ("WithMask", "mask 88%", 3, "door-1")
    counter = EventCounter()
    counter.add(event)
    assert counter.totals() == {"WithMask": 1} and counter.per_minute() == [{"minute": 0, "WithMask": 1}]
    sharp = jpeg(event.thumbnail_jpeg)
    blurred = jpeg(event_record(person, "door-1", blurred=True).thumbnail_jpeg)
    assert sharp.shape == blurred.shape and max(sharp.shape[:2]) == 64
    assert np.abs(sharp.astype(int) - blurred).mean() > 10, "the face is blurred beyond its texture"
    assert blurred.std() < sharp.std()


def test_annotated_frames_blur_the_faces_under_their_boxes() -> None:
    frame = scene([(100, 100)])
    result = frame_result(frame, [0.9])
    sharp, blurred = annotate(frame, result), annotate(frame, result, blurred=True)
    inner = (slice(120, 138), slice(104, 136))  # inside the crop, below the tag, off the box's edges
    assert np.abs(sharp[inner].astype(int) - blurred[inner]).mean() > 10
    np.testing.assert_array_equal(sharp[:, 150:], blurred[:, 150:])  # the rest of the frame is untouched
    left, top, right, _ = result.crops[0]
    assert (blurred[top, left:right] == sharp[top, left:right]).all(), "the box is drawn on top"


class Receiver(BaseHTTPRequestHandler):
    """Records POSTed JSON; answers 500 to the first ``server.failures`` requests."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.server.failures > 0:
            self.server.failures -= 1
            self.send_response(500)
        else:
            self.server.received.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received, server.failures = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("failures", [0, 2])
def test_the_webhook_delivers_events_after_retries(receiver, failures: int) -> None:
    receiver.failures = failures
    hook = Webhook(f"http://127.0.0.1:{receiver.server_port}/events", backoff=0.01)
    assert all(hook.send({"id": i}) for i in range(3))
    hook.close(drain_s=5)
    assert [e["id"] for e in receiver.received] == [0, 1, 2]
    assert hook.stats() | {"url": None} == {"url": None, "sent": 3, "failed": 0, "dropped": 0}


def test_a_dead_webhook_never_blocks_the_loop() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = Webhook(f"http://127.0.0.1:{port}/", queue_size=2, retries=50, backoff=0.05)
    start = time.perf_counter()
    sent = [hook.send({"id": i}) for i in range(20)]
    assert time.perf_counter() - start < 0.05, "send never waits"
    assert sent.count(False) >= 16
    hook.close(drain_s=0.2)
    assert time.perf_counter() - start < 1, "close gives up after drain_s"
    assert hook.stats()["sent"] == 0 and hook.stats()["dropped"] >= 16


def write_walk(path: Path, frames: int = 30) -> Path:
    """Two faces walking right, the second leaving halfway."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 240))
    for i in range(frames):
        writer.write(scene([(10 + 3 * i, 20)] + ([(200, 150)] if i < frames // 2 else [])))
    writer.release()
    return path


def test_detect_with_events_end_to_end(
    tmp_path: Path, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(cli, "make_cropper", lambda args, classifier: FaceCropper(BlobFaces(), 0.1))
    output = tmp_path / "out" / "annotated.mp4"
    args = ["detect", str(models["onnx"]), "--source", str(write_walk(tmp_path / "walk.mp4")), "--output"]
    assert cli.main([*args, str(output), "--blur", "--track-patience", "0.1", "--event-after", "0"]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    events = [json.loads(line) for line in output.with_suffix(".events.jsonl").read_text().splitlines()]
    assert summary["events"] == str(output.with_suffix(".events.jsonl")) and len(events) == 2
    assert sum(summary["people"].values()) == 2 and summary["per_minute"][0]["minute"] == 0
    assert {e["last_frame"] for e in events} == {14, 29}
    log = [json.loads(line) for line in output.with_suffix(".jsonl").read_text().splitlines()]
    faces = [f for record in log[1:] for f in record["faces"]]
    assert {f["person"]["id"] for f in faces} == {e["id"] for e in events}
    assert all(f["person"].keys() >= {"label", "confidence", "tag"} for f in faces)
    assert {e["camera"] for e in events} == {str(tmp_path / "walk.mp4")} == {r["camera"] for r in log}
    assert cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FRAME_COUNT) == 30


def test_a_loop_posts_its_events(tmp_path: Path, models: dict[str, Path], receiver) -> None:
    hook = Webhook(f"http://127.0.0.1:{receiver.server_port}/")
    classifier = load_classifier(models["onnx"])
    session = CameraSession(
        "walk",
        FaceCropper(BlobFaces(), 0.1),
        classifier,
        PeopleOptions(patience=0.1),
        EventSink(webhook=hook),
    )
    summary = run_detection(open_source(str(write_walk(tmp_path / "walk.mp4", 20))), session)
    assert summary.events["webhook"]["sent"] == 2 and len(receiver.received) == 2
    assert {e["frames"] for e in receiver.received} == {9, 19}


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--vote-frames", "0"),
        ("--hysteresis", "0.7"),
        ("--event-after", "-1"),
        ("--webhook", "hooks.example/in"),
    ],
)
def test_bad_tracking_flags_are_one_line_errors(
    flag: str, value: str, models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(["detect", str(models["onnx"]), "--source", "x.mp4", flag, value]) == 1
    assert capsys.readouterr().err.startswith(f"error: {flag} {value}")


def test_bad_serve_options_stop_it_before_it_starts(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: pytest.fail("the server started"))
    assert cli.main(["serve", str(models["onnx"]), "--port", "0", "--webhook", "ftp://hooks"]) == 1
    assert capsys.readouterr().err == "error: --webhook ftp://hooks: not an http:// or https:// URL\n"
    assert cli.main(["serve", str(models["onnx"]), "--port", "0", "--max-megapixels", "0"]) == 1
    assert capsys.readouterr().err == "error: --max-megapixels 0.0: expected a number of megapixels > 0\n"
    for camera, message in [
        ("door-1", "--camera door-1: expected NAME=SOURCE, e.g. door-1=rtsp://10.0.0.5/stream1"),
        ("front door=0", "camera name 'front door': letters, digits, '.', '_' or '-', at most 40"),
    ]:
        assert cli.main(["serve", str(models["onnx"]), "--port", "0", "--camera", camera]) == 1
        assert capsys.readouterr().err == f"error: {message}\n"
    argv = ["serve", str(models["onnx"]), "--port", "0", "--camera", "a=0", "--camera", "a=1"]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == "error: --camera a=1: a second camera named a\n"


def test_tracking_works_without_torch() -> None:
    """The ONNX path stays torch-free with people on: ByteTrack (trackers, supervision) pulls no torch in."""
    script = (
        test_architecture.BLOCK_TORCH
        + """
from facemask.inference.events import EventSink
from facemask.inference.tracking import PersonTracker
PersonTracker(0.5, ("WithoutMask", "WithMask")).tracker
try:
    import torch
except ImportError:
    print("ok")
"""
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_servers_live_camera_tracks_people_and_counts_their_events(
    models: dict[str, Path], receiver
) -> None:
    """/api/live: one face walking through the frames keeps its id; when it leaves, its event comes back
    with the frame that completed it, is posted to the webhook, and /api/stats counts the person."""
    import asyncio

    from fastapi import UploadFile

    from facemask.web.entrance import Entrance
    from facemask.web.server import create_app

    classifier, cropper = load_classifier(models["onnx"]), FaceCropper(BlobFaces(), 0.0)
    hook = Webhook(f"http://127.0.0.1:{receiver.server_port}/")
    options = PeopleOptions(patience=0.4, event_after=None)  # 2 frames at the browser's 5 a second
    app = create_app(
        classifier, cropper, entrance=Entrance(classifier, cropper, options, EventSink(webhook=hook))
    )
    endpoints = {route.path: route.endpoint for route in app.routes if hasattr(route, "endpoint")}

    def post(frame: np.ndarray, blur: bool = False):
        upload = UploadFile(io.BytesIO(cv2.imencode(".png", frame)[1].tobytes()), filename="frame.png")
        return asyncio.run(endpoints["/api/live"](upload, blur, "door-1"))

    walk = [post(scene([(40 + 10 * i, 100)])) for i in range(6)]
    assert [out.faces[0].person.id for out in walk[1:]] == [1] * 5, "one person, one id"
    assert walk[-1].faces[0].person.tag.endswith("%") and walk[-1].events == []
    gone = [post(scene([]), blur=True) for _ in range(5)]
    events = [event for out in gone for event in out.events]
    assert len(events) == 1 and (events[0].id, events[0].frames, events[0].camera) == (1, 5, "door-1")
    assert events[0].label in CLASSES and events[0].thumbnail_jpeg
    stats = endpoints["/api/stats"]()
    assert stats.frames == 11 and sum(stats.people.values()) == 1
    assert stats.cameras["door-1"].frames == 11 and stats.cameras["door-1"].source == "browser"
    hook.close(drain_s=5)
    assert [(event["id"], event["camera"]) for event in receiver.received] == [(1, "door-1")]
