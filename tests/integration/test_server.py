"""``facemask serve``: the real server in a subprocess, over HTTP on loopback, and its page in headless Chromium."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.cli import ROOT, WITHOUT_TORCH
from tests.conftest import SHARED_DATA, requires_shared

pytestmark = [pytest.mark.integration, requires_shared]
PHOTO = SHARED_DATA / "photos" / "WithMask" / "110-with-mask.jpg"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Headless and quiet: no first-run, sync or update traffic on a machine without internet.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(model: Path, *flags: str) -> Iterator[tuple[str, int, subprocess.Popen]]:
    """``facemask serve MODEL FLAGS`` without PyTorch; (host, port, process) once healthy."""
    port = free_port()
    command = ["serve", str(model), "--port", str(port), "--quiet", *flags]
    process = subprocess.Popen(
        [sys.executable, "-c", WITHOUT_TORCH, *command], cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if request("GET", ("127.0.0.1", port), "/api/health")[0] == 200:
                break
        except OSError:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
    try:
        yield "127.0.0.1", port, process
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(trained_model: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The server with a 1 MB upload limit; (host, port)."""
    with serving(trained_model["onnx"], "--max-upload-mb", "1") as (host, port, _):
        yield host, port


def request(
    method: str, address: tuple[str, int], path: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(*address, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def multipart(name: str, filename: str, content: bytes) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post_image(address: tuple[str, int], content: bytes, filename: str = "photo.jpg") -> tuple[int, dict]:
    body, headers = multipart("image", filename, content)
    return request("POST", address, "/api/predict", body, headers)


def test_health_and_predict(server: tuple[str, int]) -> None:
    status, health = request("GET", server, "/api/health")
    assert status == 200 and health["status"] == "ok" and health["classes"] == ["WithoutMask", "WithMask"]
    status, result = post_image(server, PHOTO.read_bytes())
    assert status == 200, result
    assert (result["width"], result["height"]) == Image.open(PHOTO).size
    assert len(result["faces"]) == 1
    face = result["faces"][0]
    assert face["label"] in ("WithMask", "WithoutMask") and 0 <= face["p_mask"] <= 1
    x1, y1, x2, y2 = face["crop"]
    assert 0 <= x1 < x2 <= result["width"] and 0 <= y1 < y2 <= result["height"]
    assert face.keys() == {"box", "crop", "score", "label", "p_mask", "confidence", "tag", "person"}
    assert face["person"] is None, "a photo has no people"
    assert result["threshold"] == pytest.approx(health["threshold"])


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"", 400, "This file is empty (photo.jpg)"),
        (b"%PDF-1.4 not an image", 415, "This file is not a photo (photo.jpg)"),
        (PHOTO.read_bytes()[:2000], 415, "This photo is damaged or incomplete (photo.jpg)"),
        (b"\0" * (1024 * 1024 + 10), 413, "Photo too large: at most 1 MB"),
    ],
    ids=["empty", "not-an-image", "truncated", "oversized"],
)
def test_bad_uploads_get_a_4xx_and_the_server_keeps_serving(
    server: tuple[str, int], content: bytes, status: int, message: str
) -> None:
    got, body = post_image(server, content)
    assert got == status and body["detail"] == message
    assert request("GET", server, "/api/health")[0] == 200


def test_malformed_requests(server: tuple[str, int]) -> None:
    assert request("GET", server, "/api/predict")[0] == 405
    assert (
        request("POST", server, "/api/predict", b"just bytes", {"Content-Type": "application/octet-stream"})[
            0
        ]
        == 422
    )
    body, headers = multipart("wrong_field", "a.jpg", PHOTO.read_bytes())
    status, detail = request("POST", server, "/api/predict", body, headers)
    assert status == 422 and detail["detail"][0]["loc"] == ["body", "image"]
    assert request("GET", server, "/openapi.json")[1]["paths"].keys() >= {"/api/predict", "/api/health"}


def test_load_1000_requests_from_8_clients(server: tuple[str, int]) -> None:
    buffer = io.BytesIO()
    Image.open(PHOTO).convert("RGB").resize((160, 240)).save(buffer, "JPEG")
    content = buffer.getvalue()

    def one(_: int) -> tuple[int, float]:
        start = time.perf_counter()
        status, _body = post_image(server, content)
        return status, time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(1000)))
    elapsed = time.perf_counter() - start
    latencies = sorted(seconds * 1000 for _, seconds in results)
    percentiles = statistics.quantiles(latencies, n=100)
    print(
        f"\n1000 requests, 8 clients: {1000 / elapsed:.0f} req/s; latency ms p50 {percentiles[49]:.1f}, "
        f"p95 {percentiles[94]:.1f}, p99 {percentiles[98]:.1f}, max {latencies[-1]:.1f}"
    )
    assert [status for status, _ in results] == [200] * 1000


def png(width: int, height: int) -> bytes:
    """A PNG of smooth gradients: many pixels in few bytes, as a photo's worst case for decoding."""
    ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    buffer = io.BytesIO()
    Image.fromarray(np.stack([ramp, ramp[::-1], np.full_like(ramp, 90)], 2)).save(buffer, "PNG")
    return buffer.getvalue()


def peak_mb(process: subprocess.Popen) -> float:
    """The peak resident memory of a running process (Linux: VmHWM)."""
    status = Path(f"/proc/{process.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def test_memory_stays_bounded_under_the_largest_uploads(trained_model: dict[str, Path]) -> None:
    """8 clients at once sending the largest photo allowed (16 megapixels) and a PNG bomb: the server stays
    under 500 MB and keeps answering; the bomb is refused from its header."""
    largest, bomb = png(4800, 3333), png(13000, 13000)
    assert len(largest) < 10 * 2**20 and len(bomb) < 2**20
    with serving(trained_model["onnx"]) as (host, port, process):
        status, body = post_image((host, port), bomb, "bomb.png")
        assert status == 413 and body["detail"] == "Photo too large: at most 16 megapixels (bomb.png)"
        idle = peak_mb(process)
        with ThreadPoolExecutor(9) as pool:
            uploads = [pool.submit(post_image, (host, port), largest, "large.png") for _ in range(8)]
            healthy = [request("GET", (host, port), "/api/health")[0] for _ in range(5)]
            statuses = [upload.result()[0] for upload in uploads]
        peak = peak_mb(process)
    print(f"\npeak memory: {idle:.0f} MB started, {peak:.0f} MB under 8 uploads of 16 megapixels")
    assert statuses == [200] * 8 and healthy == [200] * 5
    assert peak < 500


REALWORLD = SHARED_DATA / "realworld" / "photos"
MASKED = REALWORLD / "WithMask" / "ArifAlvi_0001.png"  # 160x160 faces, the model sure of each
UNMASKED = REALWORLD / "WithoutMask" / "AdrianDunbar_0002.png"
CROWD = SHARED_DATA / "photos" / "WithMask" / "385-with-mask.jpg"  # 4 faces side by side: labels crowd
requires_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the page tests leave their screenshots: $FACEMASK_SCREENSHOTS (to look at them), else tmp_path."""
    folder = Path(os.environ.get("FACEMASK_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def counts_text(labels: list[str]) -> str:
    """The page's count of faces, e.g. "3 people · 2 with mask · 1 without"."""
    people, mask = len(labels), labels.count("WithMask")
    return f"{people} {'person' if people == 1 else 'people'} · {mask} with mask · {people - mask} without"


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@requires_chromium
def test_page_in_headless_chromium(server: tuple[str, int], tmp_path: Path, screenshots: Path) -> None:
    """The operator console on uploads: upload order, sizes, labels apart and inside, totals, alert, history,
    errors in the operator's words."""
    from playwright.sync_api import sync_playwright

    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    big = tmp_path / "crowd-4000.jpg"  # a 4000-px photo (the server decodes it at 2000, draft mode)
    crowd = Image.open(CROWD).convert("RGB")
    crowd.resize((4000, 4000 * crowd.height // crowd.width), Image.LANCZOS).save(big, quality=70)
    uploads = [MASKED, UNMASKED, big, bad]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://{server[0]}:{server[1]}/")
        page.wait_for_function("document.getElementById('health').textContent.startsWith('model')")
        page.set_input_files("#files", [str(path) for path in uploads])
        page.wait_for_function("document.querySelectorAll('.result.done').length === 4", timeout=30_000)
        page.screenshot(path=str(screenshots / "upload.png"))
        page.screenshot(path=str(screenshots / "upload-full.png"), full_page=True)

        items = page.query_selector_all(".result")
        assert [item.get_attribute("data-file") for item in items] == [path.name for path in uploads]
        labels = {
            path.name: item.get_attribute("data-labels") for path, item in zip(uploads, items, strict=True)
        }
        assert labels[UNMASKED.name] == "WithoutMask", "the unmasked photo raises the alert below"
        for path, item in zip(uploads[:3], items[:3], strict=True):
            status, result = post_image(server, path.read_bytes(), path.name)
            assert status == 200 and labels[path.name] == ",".join(face["label"] for face in result["faces"])
            canvas = item.query_selector("canvas")
            shown = canvas.evaluate(
                "c => [c.clientWidth, c.clientHeight, +c.dataset.width, +c.dataset.height]"
            )
            assert shown[2:] == [result["width"], result["height"]]
            assert 320 <= shown[0] <= 800 and shown[1] <= 600, f"{path.name} shown at {shown[:2]}"
            assert counts_text(labels[path.name].split(",")) in item.inner_text()
            # Each tag inside the image and clear of the others (the crowd's four faces are side by side).
            boxes = json.loads(canvas.get_attribute("data-label-boxes"))
            assert len(boxes) == len(result["faces"]) and None not in boxes
            for i, box in enumerate(boxes):
                assert 0 <= box[0] < box[2] <= result["width"] and 0 <= box[1] < box[3] <= result["height"]
                assert not any(overlap(box, other) for other in boxes[i + 1 :]), boxes
        assert items[0].evaluate("e => e.querySelector('canvas').clientWidth") >= 2 * 160
        assert len(labels[big.name].split(",")) == 4

        # Errors in the operator's words.
        assert items[3].get_attribute("class").split() == ["result", "error", "done"]
        assert (
            items[3].eval_on_selector(".counts", "e => e.textContent")
            == "This file is not a photo (notes.jpg)"
        )

        # Totals of the session, what the model said of every face.
        faces = ",".join(labels[path.name] for path in uploads[:3]).split(",")
        totals = page.query_selector("#totals")
        assert counts_text(faces) in totals.inner_text()
        assert [totals.get_attribute(f"data-{key}") for key in ("people", "mask", "nomask")] == [
            str(len(faces)), str(faces.count("WithMask")), str(faces.count("WithoutMask"))
        ]  # fmt: skip

        # The history: newest first, one thumbnail per face, the error logged too.
        events = page.query_selector_all("#history .event")
        times = [event.eval_on_selector("time", "t => t.dateTime") for event in events]
        assert times == sorted(times, reverse=True)
        thumbs = page.query_selector_all("#history .event canvas.thumb")
        assert len(thumbs) == len(faces)
        for thumb in thumbs:  # a face was drawn: not one flat colour
            assert thumb.evaluate(
                "c => new Set(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).size > 50"
            )
        logged = [event.get_attribute("data-label") for event in events if event.query_selector("canvas")]
        assert sorted(logged) == sorted(faces)
        assert "This file is not a photo (notes.jpg)" in page.inner_text("#history")

        # The alert: up for the unmasked faces, with the time, until acknowledged.
        alert = page.query_selector("#alert")
        assert alert.is_visible() and alert.get_attribute("role") == "alert"
        assert alert.get_attribute("data-count") == str(faces.count("WithoutMask"))
        assert re.search(r"No mask: .* without a mask, the latest at \d\d:\d\d:\d\d", alert.inner_text())
        page.click("#acknowledge")
        assert not alert.is_visible()
        assert page.query_selector("#history .event").inner_text().startswith("Alert acknowledged")

        # A server that does not answer, in words.
        page.route("**/api/predict", lambda route: route.abort())
        page.set_input_files("#files", [str(MASKED)])
        page.wait_for_function("document.querySelectorAll('.result.done').length === 5", timeout=30_000)
        assert (
            page.eval_on_selector(".result:last-child .counts", "e => e.textContent")
            == "The server does not answer"
        )
        browser.close()


def write_y4m(path: Path, photos: list[Path | None], seconds: int = 3, fps: int = 5) -> Path:
    """A video for Chromium's fake camera: each photo scaled to 320 px on a grey 640x480 frame (None: the
    empty doorway), for a few seconds (raw YUV4MPEG2, 4:2:0; the camera plays it in a loop)."""
    width, height = 640, 480
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for photo in photos:
            frame = Image.new("RGB", (width, height), (96, 96, 96))
            if photo is not None:
                frame.paste(Image.open(photo).convert("RGB").resize((320, 320)), (160, 80))
            y, u, v = frame.convert("YCbCr").split()
            planes = [y, u.resize((width // 2, height // 2)), v.resize((width // 2, height // 2))]
            data = b"FRAME\n" + b"".join(np.asarray(plane).tobytes() for plane in planes)
            out.write(data * (seconds * fps))
    return path


@requires_chromium
def test_live_mode_with_a_fake_camera(server: tuple[str, int], tmp_path: Path, screenshots: Path) -> None:
    """Chromium's fake camera playing a masked person, then an unmasked one, each walking off before the next
    comes: frames posted to /api/live and drawn, the people in view counted, each person's entrance event in
    the history (with the server's thumbnail) and the totals, the alert raised once for the unmasked person."""
    from playwright.sync_api import sync_playwright

    video = write_y4m(tmp_path / "faces.y4m", [MASKED, None, UNMASKED, None])
    camera = [*FAKE_CAMERA, f"--use-file-for-fake-video-capture={video}"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS + camera)
        page = browser.new_context(permissions=["camera"], viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"http://{server[0]}:{server[1]}/")
        page.click("#tab-live")
        assert page.inner_text("#in-view") == "Live camera, in view now camera off"
        page.click("#start")
        started = time.monotonic()
        page.wait_for_function("document.getElementById('in-view').dataset.people === '1'", timeout=30_000)
        assert "in view now 1 person · " in page.inner_text("#in-view")
        # Both people come by within a loop of the video (12 s); each one's event logged once, when they leave.
        for label in ("WithMask", "WithoutMask"):
            page.wait_for_selector(f"#history .event.{label} img.thumb", timeout=40_000)
        page.wait_for_selector("#alert:not([hidden])")
        assert "(webcam, person #" in page.inner_text("#alert")
        assert int(page.get_attribute("#totals", "data-people")) >= 2
        page.wait_for_function("document.getElementById('in-view').dataset.nomask === '1'", timeout=30_000)
        # from a person's second frame on, the box shows the person: id and voted tag
        page.wait_for_function(
            "JSON.parse(document.getElementById('live-canvas').dataset.tags || '[]').some(t => /^#\\d+ /.test(t))",
            timeout=30_000,
        )
        page.screenshot(path=str(screenshots / "live.png"))
        size = page.eval_on_selector(
            "#live-canvas", "c => [+c.dataset.width, +c.dataset.height, c.clientWidth]"
        )
        assert size[:2] == [640, 480] and size[2] >= 640, "a camera frame was drawn at the view's size"
        # One event a person, not one a frame (5 a second): two a loop of the video, give or take one.
        arrivals = len(page.query_selector_all("#history .event img.thumb"))
        assert arrivals <= 2 * ((time.monotonic() - started) // 12 + 2)
        page.click("#acknowledge")
        assert not page.is_visible("#alert")
        page.click("#stop")
        assert page.is_enabled("#start") and page.inner_text("#in-view").endswith("camera off")
        browser.close()


def test_serve_reads_an_ip_camera_that_drops_and_writes_its_people_when_stopped(
    trained_model: dict[str, Path], tmp_path: Path
) -> None:
    """``serve --camera door=URL``: an IP camera on loopback (MJPEG) showing a face drops for two seconds and
    comes back: the door says it is reconnecting, then reads again within 5 s of the camera's return; when
    serve is stopped (SIGTERM) the person still in view is written to --events, with the door's name."""
    import signal

    from tests.unit.test_doors import wait_for
    from tests.unit.test_streams import Camera

    canvas = np.full((480, 640, 3), 90, np.uint8)
    photo = np.asarray(Image.open(PHOTO).convert("RGB").resize((240, 240)))[:, :, ::-1]
    canvas[120:360, 200:440] = photo
    camera = Camera(fps=10, picture=canvas)
    events = tmp_path / "events.jsonl"
    flags = ["--camera", f"door={camera.url}", "--events", str(events), "--event-after", "0"]
    try:
        with serving(trained_model["onnx"], *flags) as (host, port, process):
            door = lambda: request("GET", (host, port), "/api/stats")[1]["cameras"]["door"]  # noqa: E731
            wait_for(lambda: door()["frames"] >= 10)
            camera.stop()
            wait_for(lambda: door()["status"] == "reconnecting")
            time.sleep(2)
            seen = door()["frames"]
            camera.start()
            back = time.monotonic()
            wait_for(lambda: door()["frames"] > seen and door()["status"] == "live")
            assert time.monotonic() - back < 5, "reading again within 5 s of the camera's return"
            wait_for(lambda: door()["frames"] >= seen + 5)
            process.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully (the lifespan's end), then re-raises the signal to exit with it
            assert process.wait(timeout=30) in (0, -signal.SIGTERM)
            assert '"door": {"frames": ' in process.stderr.read(), (
                "the lifespan's end logged the doors' counts"
            )
    finally:
        camera.stop()
    people = [json.loads(line) for line in events.read_text().splitlines()]
    assert people and {p["camera"] for p in people} == {"door"}
    assert max(p["frames"] for p in people) > 10, "one person across the drop, written at the stop"


def write_mp4(path: Path, photo: Path, seconds: int, fps: int = 10, arrives: int = 0) -> Path:
    """A door camera's video: ``photo`` at 320 px on a grey 640x480 frame, standing still from second
    ``arrives`` on (before it, nobody at the door)."""
    empty = np.full((480, 640, 3), 128, np.uint8)
    frame = empty.copy()
    frame[80:400, 160:480] = np.asarray(Image.open(photo).convert("RGB").resize((320, 320)))[:, :, ::-1]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for i in range(seconds * fps):
        writer.write(frame if i >= arrives * fps else empty)
    writer.release()
    return path


@requires_chromium
def test_the_console_shows_the_doors_side_by_side(
    trained_model: dict[str, Path], tmp_path: Path, screenshots: Path
) -> None:
    """Two doors the server reads (an unmasked person at one, a masked one at the other): the Doors tab shows
    each door's annotated frame and totals, each person's event reaches the history under its door's name,
    and the alert names the door."""
    from playwright.sync_api import sync_playwright

    doors = {
        # each person arrives once the console polls: it replays no event older than its first poll
        "door-1": write_mp4(tmp_path / "1.mp4", UNMASKED, 30, arrives=8),
        "door-2": write_mp4(tmp_path / "2.mp4", MASKED, 30, arrives=8),
    }
    flags = [flag for name, video in doors.items() for flag in ("--camera", f"{name}={video}")]
    with (
        serving(trained_model["onnx"], *flags, "--event-after", "1") as (host, port, _),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://{host}:{port}/")
        page.click("#tab-doors")
        for name in doors:
            page.wait_for_function(
                f"document.querySelector('figure[data-camera=\"{name}\"] img')?.naturalWidth === 640",
                timeout=30_000,
            )
        page.wait_for_selector("#history .event.WithoutMask img.thumb", timeout=30_000)
        page.wait_for_selector("#history .event.WithMask img.thumb", timeout=30_000)
        sources = {page.inner_text(f"#history .event.{label} span") for label in ("WithMask", "WithoutMask")}
        assert sources == {"door-1", "door-2"}
        assert page.inner_text("#history .event.WithoutMask span") == "door-1"
        assert "(door-1, person #1)" in page.inner_text("#alert")
        page.wait_for_function(
            "document.querySelector('figure[data-camera=\"door-1\"]').dataset.nomask === '1'",
            timeout=10_000,
        )
        assert page.get_attribute('figure[data-camera="door-2"]', "data-mask") == "1"
        assert "live · " in page.inner_text('figure[data-camera="door-1"] .status')
        page.screenshot(path=str(screenshots / "doors.png"))
        browser.close()
