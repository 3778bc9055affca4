"""``facemask serve``: the real server in a subprocess, over HTTP on loopback, and its page in headless Chromium."""

from __future__ import annotations

import http.client
import io
import json
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

import numpy as np
import pytest
from PIL import Image

from tests.cli import ROOT, WITHOUT_TORCH
from tests.conftest import MASK28, SHARED_DATA, requires_shared

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


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_page_in_headless_chromium(server: tuple[str, int], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(f"http://{server[0]}:{server[1]}/")
        page.wait_for_function("document.getElementById('health').textContent.startsWith('model')")
        page.set_input_files(
            "#files", [str(PHOTO), str(MASK28 / "Test" / "WithoutMask" / "62.png"), str(bad)]
        )
        page.wait_for_function("document.querySelectorAll('.result.done').length === 3", timeout=30_000)
        results = {item.get_attribute("data-file"): item for item in page.query_selector_all(".result")}
        photo = results[PHOTO.name]
        assert photo.get_attribute("data-labels") in ("WithMask", "WithoutMask")
        assert "1 with" in photo.inner_text() or "0 with mask, 1 without" in photo.inner_text()
        canvas = photo.query_selector("canvas")
        assert canvas.evaluate("c => [c.width, c.height]") == list(Image.open(PHOTO).size)
        assert results["notes.jpg"].inner_text().endswith("error: This file is not a photo (notes.jpg)")
        page.screenshot(path=str(tmp_path / "page.png"))
        browser.close()


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_live_mode_with_a_fake_camera(server: tuple[str, int]) -> None:
    """Chromium's fake camera (a test pattern, no face) through getUserMedia, frames posted and drawn."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS + FAKE_CAMERA)
        page = browser.new_context(permissions=["camera"]).new_page()
        page.goto(f"http://{server[0]}:{server[1]}/")
        page.click("#tab-live")
        page.click("#start")
        page.wait_for_function(
            "document.getElementById('live-status').textContent.includes('no face found')", timeout=30_000
        )
        size = page.eval_on_selector("#live-canvas", "c => [c.width, c.height]")
        assert size == [640, 480], "an annotated camera frame was drawn"
        page.click("#stop")
        assert page.is_enabled("#start")
        browser.close()
