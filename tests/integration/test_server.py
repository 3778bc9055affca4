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
from pathlib import Path

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


@pytest.fixture(scope="module")
def server(trained_model: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """``facemask serve MODEL.onnx`` without PyTorch, 1 MB upload limit; (host, port) once healthy."""
    port = free_port()
    command = ["serve", str(trained_model["onnx"]), "--port", str(port), "--max-upload-mb", "1", "--quiet"]
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
    yield "127.0.0.1", port
    process.terminate()
    process.wait(timeout=10)


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
        (b"", 400, "empty file"),
        (b"%PDF-1.4 not an image", 415, "not an image file"),
        (PHOTO.read_bytes()[:2000], 415, "corrupt or truncated"),
        (b"\0" * (1024 * 1024 + 10), 413, "exceeds the 1048576-byte limit"),
    ],
    ids=["empty", "not-an-image", "truncated", "oversized"],
)
def test_bad_uploads_get_a_4xx_and_the_server_keeps_serving(
    server: tuple[str, int], content: bytes, status: int, message: str
) -> None:
    got, body = post_image(server, content)
    assert got == status and message in body["detail"]
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


def test_load_500_requests_from_8_clients(server: tuple[str, int]) -> None:
    buffer = io.BytesIO()
    Image.open(PHOTO).convert("RGB").resize((160, 240)).save(buffer, "JPEG")
    content = buffer.getvalue()

    def one(_: int) -> tuple[int, float]:
        start = time.perf_counter()
        status, _body = post_image(server, content)
        return status, time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(500)))
    elapsed = time.perf_counter() - start
    latencies = sorted(seconds * 1000 for _, seconds in results)
    percentiles = statistics.quantiles(latencies, n=100)
    print(
        f"\n500 requests, 8 clients: {500 / elapsed:.0f} req/s; latency ms p50 {percentiles[49]:.1f}, "
        f"p95 {percentiles[94]:.1f}, p99 {percentiles[98]:.1f}, max {latencies[-1]:.1f}"
    )
    assert [status for status, _ in results] == [200] * 500


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
        assert (
            results["notes.jpg"].inner_text().endswith("error: notes.jpg: not an image file Pillow can read")
        )
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
