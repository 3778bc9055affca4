"""serve's doors on one PC, over a real socket: two cameras the server reads itself keep their people, events
and totals apart; when the server stops, the people still in view become events; browsers post by name."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import uvicorn

from facemask.inference.classifier import load_classifier
from facemask.inference.events import EventSink
from facemask.inference.logfiles import JsonLines
from facemask.inference.records import EventRecord
from facemask.inference.sources import open_source
from facemask.inference.tracking import PeopleOptions
from facemask.vision.crops import FaceCropper
from facemask.web.entrance import Entrance
from facemask.web.server import create_app
from tests.unit.test_tracking import BlobFaces, scene, write_walk


def write_stay(path: Path, frames: int) -> Path:
    """One face that stays in view, drifting slowly."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 240))
    for i in range(frames):
        writer.write(scene([(100 + i // 10, 80)]))
    writer.release()
    return path


@contextmanager
def serving(entrance: Entrance, classifier) -> Iterator[str]:
    """The app under uvicorn in a thread on a loopback port; stopped (lifespan shutdown) on exit."""
    app = create_app(classifier, entrance.cropper, entrance=entrance)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not stop"


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def status_of(url: str, data: bytes = b"", headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data or None, headers or {}), timeout=10
        ) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def entrance(models: dict[str, Path], tmp_path: Path) -> Entrance:
    classifier = load_classifier(models["onnx"])
    sink = EventSink(JsonLines(tmp_path / "events.jsonl"))
    options = PeopleOptions(patience=0.1, event_after=None)  # one event a person, when its track ends
    return Entrance(classifier, FaceCropper(BlobFaces(), 0.1), options, sink)


def test_two_doors_keep_their_people_apart_and_stopping_ends_open_tracks(
    entrance: Entrance, tmp_path: Path
) -> None:
    # door-a: two people walk by in one second (the video ends); door-b: one person stays for 20 s.
    entrance.add_camera("door-a", open_source(str(write_walk(tmp_path / "a.mp4"))), "a.mp4")
    entrance.add_camera("door-b", open_source(str(write_stay(tmp_path / "b.mp4", 600))), "b.mp4")
    with serving(entrance, entrance.classifier) as url:
        wait_for(lambda: get(f"{url}/api/stats")["cameras"]["door-a"]["status"] == "ended")
        stats = get(f"{url}/api/stats")
        a, b = stats["cameras"]["door-a"], stats["cameras"]["door-b"]
        assert a["frames"] == 30 and sum(a["people"].values()) == 2
        assert b["status"] == "live" and b["frames"] > 0 and b["people"] == {}, (
            "door-b's person is still in view"
        )
        assert stats["people"] == a["people"] and stats["frames"] == a["frames"] + b["frames"]
        recent = get(f"{url}/api/events?after=0")
        assert [e["camera"] for e in recent["events"]] == ["door-a", "door-a"]
        assert get(f"{url}/api/events?after={recent['next']}")["events"] == []
        with urllib.request.urlopen(f"{url}/api/cameras/door-b/frame.jpg", timeout=10) as response:
            frame = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
        assert frame.shape == (240, 320, 3)
        assert status_of(f"{url}/api/cameras/door-c/frame.jpg") == 404
        time.sleep(0.5)
    events = [
        EventRecord.model_validate_json(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()
    ]
    by_door = {door: [e for e in events if e.camera == door] for door in ("door-a", "door-b")}
    assert sorted(e.id for e in by_door["door-a"]) == [1, 2] and {
        e.last_frame for e in by_door["door-a"]
    } == {14, 29}
    (stayed,) = by_door["door-b"]
    assert stayed.id == 1, "door-b's tracker has its own ids"
    assert stayed.frames >= 10 and stayed.last_time >= 0.5, "written when the server stopped, not lost"


def test_browser_cameras_by_name(entrance: Entrance, tmp_path: Path) -> None:
    import uuid

    entrance.add_camera("door-a", open_source(str(write_walk(tmp_path / "a.mp4"))), "a.mp4")
    frame = cv2.imencode(".png", scene([(40, 100)]))[1].tobytes()
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="f.png"\r\n\r\n'.encode()
        + frame
        + f"\r\n--{boundary}--\r\n".encode()
    )
    form = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    with serving(entrance, entrance.classifier) as url:
        assert status_of(f"{url}/api/live?camera=lobby", body, form) == 200
        assert status_of(f"{url}/api/live", body, form) == 200  # the page's default door
        assert status_of(f"{url}/api/live?camera=door-a", body, form) == 409, "the server reads door-a"
        assert status_of(f"{url}/api/live?camera=no%20spaces", body, form) == 400
        cameras = get(f"{url}/api/stats")["cameras"]
        assert {name: cameras[name]["source"] for name in ("lobby", "webcam")} == {
            "lobby": "browser",
            "webcam": "browser",
        }
        assert cameras["lobby"]["frames"] == 1
