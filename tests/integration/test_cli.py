"""``facemask predict|detect|export|bench`` on the real dataset and photos, run as a user runs them."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from facemask.bench import make_video
from tests.cli import ROOT, run_facemask
from tests.conftest import MASK28, SHARED_DATA, requires_shared

pytestmark = [pytest.mark.integration, requires_shared]
PHOTOS = SHARED_DATA / "photos"


def accuracy(rows: list[dict]) -> float:
    return sum(row["label"] == Path(row["file"]).parent.name for row in rows) / len(rows)


@pytest.mark.parametrize("kind", ["ckpt", "onnx"])
def test_predict_test_set(kind: str, trained_model: dict[str, Path]) -> None:
    result = run_facemask(
        "predict",
        str(trained_model[kind]),
        str(MASK28 / "Test"),
        "--format",
        "csv",
        without_torch=kind == "onnx",
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 194
    assert accuracy(rows) > 0.85
    assert {row["threshold"] for row in rows} == {rows[0]["threshold"]} and 0 < float(
        rows[0]["threshold"]
    ) < 1


def test_predict_detects_faces_in_photos(trained_model: dict[str, Path]) -> None:
    photos = [*sorted((PHOTOS / "WithMask").iterdir())[:12], *sorted((PHOTOS / "WithoutMask").iterdir())[:12]]
    result = run_facemask(
        "predict",
        str(trained_model["onnx"]),
        *map(str, photos),
        "--detect",
        "--format",
        "json",
        without_torch=True,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    first_faces = [row for row in rows if row["face"] == 0]
    assert len(first_faces) >= 22, "CenterFace finds nearly every face"
    assert all(len(row["box"]) == 4 for row in first_faces)
    assert accuracy(first_faces) > 0.8
    found = int(result.stderr.strip().splitlines()[-1].split()[3])
    assert result.stderr.strip().splitlines()[-1] == f"faces found in {found} of 24 images" and found >= 22


def test_predict_reports_unreadable_files_and_still_predicts(
    tmp_path: Path, trained_model: dict[str, Path]
) -> None:
    good = sorted((MASK28 / "Test" / "WithMask").iterdir())[:3]
    (tmp_path / "corrupt.png").write_bytes(good[0].read_bytes()[:60])
    (tmp_path / "notes.jpg").write_text("not an image")
    result = run_facemask(
        "predict",
        str(trained_model["onnx"]),
        *map(str, good),
        str(tmp_path / "corrupt.png"),
        str(tmp_path / "notes.jpg"),
    )
    assert result.returncode == 1
    assert all(path.name in result.stdout for path in good), "the readable files are still predicted"
    errors = result.stderr.strip().splitlines()
    assert errors[0].startswith(f"unreadable: {tmp_path / 'corrupt.png'}: corrupt or truncated image")
    assert errors[1] == f"unreadable: {tmp_path / 'notes.jpg'}: not an image file Pillow can read"
    assert errors[2] == "2 of 5 files could not be read"


def test_predict_with_a_bad_model(tmp_path: Path) -> None:
    (tmp_path / "model.ckpt").write_text("nope")
    result = run_facemask("predict", str(tmp_path / "model.ckpt"), str(MASK28 / "Test"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(f"error: {tmp_path / 'model.ckpt'}: not a facemask checkpoint")


def test_export_checks_parity_on_test(tmp_path: Path, trained_model: dict[str, Path]) -> None:
    result = run_facemask(
        "export", str(trained_model["ckpt"]), "--output", str(tmp_path / "m.onnx"), "--data", str(MASK28)
    )
    assert result.returncode == 0, result.stderr
    assert "parity on 194 images" in result.stdout and "identical labels" in result.stdout
    max_diff = float(result.stdout.split("= ")[1].split(",")[0])
    assert max_diff < 1e-4


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(PHOTOS, tmp_path_factory.mktemp("video") / "faces.mp4", 40)


def test_detect_on_a_video(tmp_path: Path, video: Path, trained_model: dict[str, Path]) -> None:
    output = tmp_path / "annotated.mp4"
    result = run_facemask(
        "detect",
        str(trained_model["onnx"]),
        "--source",
        str(video),
        "--output",
        str(output),
        without_torch=True,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["status"] == "done" and summary["frames"] == 40
    capture = cv2.VideoCapture(str(output))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 40
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)
    records = [json.loads(line) for line in output.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(40))
    assert sum(len(r["faces"]) > 0 for r in records) >= 36, "faces found in (nearly) every frame"
    assert {f["label"] for r in records for f in r["faces"]} <= {"WithMask", "WithoutMask"}


def test_detect_on_images_writes_annotated_images(tmp_path: Path, trained_model: dict[str, Path]) -> None:
    result = run_facemask(
        "detect",
        str(trained_model["ckpt"]),
        "--source",
        str(PHOTOS / "WithMask"),
        "--output",
        str(tmp_path / "out"),
        "--max-frames",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 3
    assert len((tmp_path / "out" / "detections.jsonl").read_text().splitlines()) == 3


def test_detect_finds_several_faces_in_one_frame(tmp_path: Path, trained_model: dict[str, Path]) -> None:
    photos = [PHOTOS / "WithMask" / "110-with-mask.jpg", PHOTOS / "WithoutMask" / "116.jpg"]
    frames = [cv2.resize(cv2.imread(str(path)), (320, 480)) for path in photos]
    cv2.imwrite(str(tmp_path / "two.jpg"), cv2.hconcat(frames))
    result = run_facemask(
        "detect",
        str(trained_model["onnx"]),
        "--source",
        str(tmp_path / "two.jpg"),
        "--output",
        str(tmp_path / "out"),
        without_torch=True,
    )
    assert result.returncode == 0, result.stderr
    (record,) = [
        json.loads(line) for line in (tmp_path / "out" / "detections.jsonl").read_text().splitlines()
    ]
    centres = sorted((face["box"][0] + face["box"][2]) / 2 for face in record["faces"])
    assert len(centres) == 2 and centres[0] < 320 < centres[1], "one face in each half"
    assert cv2.imread(str(next((tmp_path / "out").glob("*.jpg")))).shape == (480, 640, 3)


def test_ctrl_c_ends_detect_with_the_video_finalised(tmp_path: Path, trained_model: dict[str, Path]) -> None:
    long_video = make_video(PHOTOS, tmp_path / "long.mp4", 600)
    output = tmp_path / "annotated.mp4"
    # Ctrl-C as from a terminal: a shell that runs pytest in the background starts its children with SIGINT
    # ignored, and Python then never raises KeyboardInterrupt.
    process = subprocess.Popen(
        [sys.executable, "-m", "facemask.cli", "detect", str(trained_model["onnx"]), "--source", str(long_video), "--output", str(output)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not output.exists() and time.monotonic() < deadline:  # the first frames are written
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    summary = json.loads(stderr.strip().splitlines()[-1])
    assert summary["status"] == "interrupted" and 0 < summary["frames"] < 600
    frames = cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FRAME_COUNT)
    assert frames in (summary["frames"], summary["frames"] - 1), "the video is readable to its last frame"
    assert len(output.with_suffix(".jsonl").read_text().splitlines()) == summary["frames"]


def test_detect_camera_not_available(trained_model: dict[str, Path]) -> None:
    result = run_facemask("detect", str(trained_model["onnx"]), "--source", "7", without_torch=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: camera 7 cannot be opened")


@pytest.mark.slow
def test_bench_prints_and_saves_the_figures(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = run_facemask("bench", "--quick", "--photos", str(PHOTOS), "--output", str(output))
    assert result.returncode == 0, result.stderr
    figures = json.loads(output.read_text())
    for path in ("torch", "onnx"):
        assert 0 < figures[path]["latency_ms"] < 100
        assert figures[path]["input"] == "28x28 gray" and 1 < figures[path]["mmacs_per_face"] < 100
        assert figures[path]["throughput_per_s"] > 100
        assert 1 < figures[path]["fps"] < 1000 and figures[path]["faces_per_frame"] > 0.8
        assert 50 < figures[path]["peak_mb"] < 4000
    assert figures["onnx"]["peak_mb"] < figures["torch"]["peak_mb"], "the ONNX path does not load PyTorch"
    assert 0 < figures["detector"]["ms_per_frame"] < 1000
    assert 0 < figures["training"]["ratio"] < 1.5
    assert "detect FPS, 640x480 video" in result.stderr


def test_calibrate_on_real_masks_then_predict_realworld(
    tmp_path: Path, trained_model: dict[str, Path]
) -> None:
    """A site's labelled photos (realmasks/val, annotated boxes) refit the threshold; the calibrated ONNX file
    carries it to predict, which runs without torch."""
    realmasks, calibrated = SHARED_DATA / "realmasks", tmp_path / "site.onnx"
    result = run_facemask(
        "calibrate",
        str(trained_model["onnx"]),
        str(realmasks / "photos" / "val"),
        "--boxes",
        str(realmasks / "boxes.csv"),
        "--target",
        "precision=0.95",
        "--output",
        str(calibrated),
    )
    assert result.returncode == 0, result.stderr
    assert "380 labelled faces" in result.stdout, "395 annotated, 15 missed by the detector"
    threshold = float(result.stdout.split("after  threshold ")[1].split(":")[0])
    after = result.stdout.split("after  threshold ")[1].splitlines()[0]
    assert float(after.split("precision ")[1].split()[0]) >= 0.95
    predicted = run_facemask(
        "predict",
        str(calibrated),
        str(SHARED_DATA / "realworld" / "mask28"),
        "--format",
        "csv",
        without_torch=True,
    )
    assert predicted.returncode == 0, predicted.stderr
    rows = list(csv.DictReader(io.StringIO(predicted.stdout)))
    assert len(rows) == 269 and len({row["threshold"] for row in rows}) == 1
    assert float(rows[0]["threshold"]) == pytest.approx(threshold, abs=1e-4), (
        "predict reads the new threshold"
    )
