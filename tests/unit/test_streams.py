"""Network cameras: a stream server on loopback (MJPEG over HTTP, what many IP cameras serve), killed and
restarted under a reader, a consumer slower than the camera, and detect on the stream."""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemask import cli
from facemask.errors import FacemaskError
from facemask.inference.sources import open_source
from facemask.inference.streams import LiveStream, is_stream
from tests.synthetic import face


class Camera:
    """An MJPEG camera on a loopback port sending a generated face; ``stop()`` drops every viewer and closes
    the port, ``start()`` opens it again."""

    def __init__(self, fps: float = 25.0, picture: np.ndarray | None = None) -> None:
        self.fps, self.sent, self.port = fps, 0, 0
        if picture is None:
            picture = cv2.cvtColor(
                cv2.resize(face(True, np.random.default_rng(0)), (160, 120)), cv2.COLOR_GRAY2BGR
            )
        self.picture = picture
        self.start()

    def start(self) -> None:
        camera, self.running = self, threading.Event()
        self.running.set()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                jpeg = cv2.imencode(".jpg", camera.picture)[1].tobytes()
                try:
                    while camera.running.is_set():
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(
                            jpeg
                        )
                        self.wfile.write(head + jpeg + b"\r\n")
                        camera.sent += 1
                        time.sleep(1 / camera.fps)
                except OSError:  # the viewer went away
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.running.clear()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"


@pytest.fixture
def camera() -> Iterator[Camera]:
    camera = Camera()
    yield camera
    camera.stop()


def test_stream_urls_are_told_from_files() -> None:
    assert is_stream("rtsp://10.0.0.5:554/stream1") and is_stream("HTTP://cam/video.mjpg")
    assert not is_stream("0") and not is_stream("video.mp4") and not is_stream("rtsp:/typo")


def test_a_stream_that_drops_is_reopened_and_goes_on(
    camera: Camera, caplog: pytest.LogCaptureFixture
) -> None:
    stream = LiveStream(camera.url, timeout_s=2.0, backoff=(0.2, 1.0))
    frames = stream.frames()
    first = [next(frames)[0] for _ in range(5)]
    camera.stop()
    with caplog.at_level(logging.WARNING, "facemask.inference.streams"):
        time.sleep(1.0)  # down for a second: the reader retries
        camera.start()
        back = time.monotonic()
        name, frame = next(frames)
        waited = time.monotonic() - back
    assert frame.shape == (120, 160, 3)
    assert waited < 5, "back within 5 s of the camera's return"
    assert stream.stats.reconnects == 1
    assert int(name.split("#")[1]) > int(first[-1].split("#")[1]), "frame numbers go on across the drop"
    assert (
        "the stream dropped; reopening" in caplog.text and "the stream is back (reconnect 1)" in caplog.text
    )
    frames.close()
    assert not stream._thread.is_alive()


def test_a_slow_consumer_sees_the_present_not_a_queue(camera: Camera) -> None:
    stream = LiveStream(camera.url, timeout_s=2.0)
    frames = stream.frames()
    next(frames)
    for _ in range(3):
        time.sleep(0.3)  # a detector slower than the camera
        name, _ = next(frames)
        assert int(name.split("#")[1]) >= stream.stats.frames - 2, "the newest frame, not the next in a queue"
    frames.close()
    assert stream.stats.stale >= 10, "frames the consumer had no time for were dropped, not queued"


def test_a_stream_that_cannot_be_opened_is_one_error() -> None:
    with pytest.raises(FacemaskError, match=r"http://127.0.0.1:9/x: the stream cannot be opened"):
        open_source("http://127.0.0.1:9/x")


def test_detect_reads_a_stream(camera: Camera, models: dict[str, Path], tmp_path: Path) -> None:
    source = open_source(camera.url)
    assert source.is_video and source.length is None and source.fps > 0
    source.frames.close()
    log = tmp_path / "detections.jsonl"
    argv = ["detect", str(models["onnx"]), "--source", camera.url, "--max-frames", "8", "--log", str(log)]
    assert cli.main(argv) == 0
    assert len(log.read_text().splitlines()) == 8
