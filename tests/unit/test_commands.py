"""The commands' rough edges on generated data: bench on an ONNX file, predict on full photos, progress
where it is asked for, serve on a busy port."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facemask import bench, cli
from facemask.inference.classifier import load_classifier
from facemask.inference.predict import FULL_PHOTO_PX, image_files, predict_files
from facemask.inference.realtime import run_detection
from facemask.inference.session import CameraSession
from facemask.inference.sources import open_source
from facemask.vision.crops import FaceCropper
from tests.cli import run_facemask
from tests.synthetic import make_image_folder
from tests.unit.test_inference import CentreFace, write_video

#: bench's training figures fit the default model on the real dataset for minutes: stood in for here
#: (tests/integration/test_cli.py runs the whole bench).
TRAINING = {"fit_images_per_s": 1.0, "ceiling_images_per_s": 1.0, "ratio": 1.0}


def test_bench_measures_an_onnx_file_alone(
    tmp_path: Path, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(bench, "training_figures", lambda folder, epochs: TRAINING)
    photos = make_image_folder(tmp_path / "photos", per_class=2)
    output = tmp_path / "bench.json"
    argv = ["bench", str(models["onnx"]), "--quick", "--photos", str(photos), "--output", str(output)]
    assert cli.main(argv) == 0
    figures = json.loads(output.read_text())
    assert "torch" not in figures and figures["onnx"]["latency_ms"] > 0 and figures["onnx"]["peak_mb"] > 0
    assert figures["onnx"]["mmacs_per_face"] > 0, "recorded in the ONNX metadata at export"
    cameras = figures["cameras"]
    assert min(cameras.values()) > 0 and set(cameras) == {
        "serve_1_camera_fps",
        "serve_2_camera_fps",
        "detect_2_processes_fps",
    }
    err = capsys.readouterr().err
    assert f"note: {models['onnx']} is ONNX: the PyTorch figures need a checkpoint" in err
    fps_row = next(line for line in err.splitlines() if line.strip().startswith("detect FPS"))
    assert fps_row.split()[4] == "-", "the PyTorch column"


def test_bench_measures_a_checkpoint_and_its_export(tmp_path: Path, models: dict[str, Path]) -> None:
    paths = bench.model_paths(str(models["ckpt"]), tmp_path)
    assert paths["torch"] == models["ckpt"] and load_classifier(paths["onnx"]).threshold > 0


def test_predict_warns_once_on_full_photos(
    tmp_path: Path, models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    classifier = load_classifier(models["onnx"])
    predict_files(classifier, list(image_files([models["data"] / "Test"])), progress=False)
    assert capsys.readouterr().err == "", "28x28 face crops"
    side = FULL_PHOTO_PX + 1
    for i in range(3):
        Image.fromarray(np.full((side * 3 // 4, side), 120, np.uint8)).save(tmp_path / f"photo{i}.jpg")
    rows, _ = predict_files(classifier, list(image_files([tmp_path])), progress=False)
    warnings = capsys.readouterr().err.splitlines()
    assert len(rows) == 3 and len(warnings) == 1
    assert (
        warnings[0].startswith(f"warning: 3 of 3 images are over {FULL_PHOTO_PX} px")
        and "--detect" in warnings[0]
    )


def test_detect_on_a_video_shows_its_progress_when_asked(
    tmp_path: Path, models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    source = open_source(str(write_video(tmp_path / "in.mp4", 12)))
    assert source.length == 12
    session = CameraSession("test", FaceCropper(CentreFace()), load_classifier(models["onnx"]), None)
    summary = run_detection(source, session, progress=True)
    assert (summary.frames, summary.faces) == (12, 12)
    assert "detecting" in capsys.readouterr().err


def test_export_shows_its_progress_when_asked(
    tmp_path: Path, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # capsys's stderr: export sees a terminal
    output = tmp_path / "m.onnx"
    assert (
        cli.main(["export", str(models["ckpt"]), "--output", str(output), "--data", str(models["data"])]) == 0
    )
    captured = capsys.readouterr()
    assert f"wrote {output}" in captured.out and "identical labels" in captured.out
    assert "exporting" in captured.err and "checking the ONNX model" in captured.err


def test_serve_on_a_busy_port_is_one_error(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: pytest.fail("uvicorn started"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["serve", str(models["onnx"]), "--port", str(port)]) == 1
    assert (
        capsys.readouterr().err == f"error: port {port} on 127.0.0.1 is in use (pick another with --port)\n"
    )


def test_predict_with_nothing_readable_is_one_line(
    tmp_path: Path, models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "a.jpg").write_text("not an image")
    (tmp_path / "b.png").write_bytes(b"")
    assert cli.main(["predict", str(models["onnx"]), str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "", "no empty table"
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"error: none of the 2 files could be read: {tmp_path / 'a.jpg'}: ")
    assert line.endswith("(and 1 more)")


def test_export_without_the_dataset_checks_on_generated_images(
    tmp_path: Path, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # no data/ here, no ../shared/data there
    monkeypatch.delenv("FACEMASK_DATA", raising=False)
    assert cli.main(["export", str(models["ckpt"]), "--output", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("parity on 256 images: ") and "identical labels" in out[1]
    assert out[1].endswith(
        "(generated images: the dataset was not found; --data DATASET checks on its Test faces)"
    )
    assert cli.main(["export", str(models["ckpt"]), "--data", str(tmp_path / "nowhere")]) == 1
    assert "error: dataset not found at" in capsys.readouterr().err


def test_a_training_command_in_the_light_install_says_what_to_install(tmp_path: Path) -> None:
    """`pip install .` has no torch: the ONNX commands run, the rest name the extra in one line."""
    model = tmp_path / "m.ckpt"
    model.write_bytes(b"")
    result = run_facemask("export", str(model), without_torch=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: facemask export needs the training packages (torch is not installed; this install runs ONNX "
        "models only): pip install 'facemask[train]'"
    )
