"""The inference pieces on generated data: detector decoding, crops, classifiers, export, predict, the frame loop."""

from __future__ import annotations

import csv
import io
import json
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from facemask.data.folder import load_image_folder
from facemask.errors import FacemaskError
from facemask.inference.classifier import OnnxClassifier, TorchClassifier, load_classifier
from facemask.inference.export import check_parity
from facemask.inference.logfiles import JsonLines
from facemask.inference.predict import image_files, predict_files, render
from facemask.inference.realtime import run_detection
from facemask.inference.session import CameraSession
from facemask.inference.sources import Source, open_source
from facemask.vision.crops import FaceCropper, crop_box
from facemask.vision.faces import CenterFace, Face
from tests.synthetic import face


def test_centerface_decodes_a_peak_into_a_box_and_landmarks() -> None:
    detector = CenterFace.__new__(CenterFace)
    detector.score_threshold, detector.nms_threshold = 0.5, 0.3
    heatmap = np.zeros((8, 8), np.float32)
    heatmap[3, 4], heatmap[3, 5] = 0.9, 0.6  # a face and a weaker duplicate next to it
    size = np.full((2, 8, 8), np.log(16 / 4), np.float32)  # 16 px high and wide on the input
    offset = np.zeros((2, 8, 8), np.float32)
    landmarks = np.full((10, 8, 8), 0.5, np.float32)  # every point at the box centre
    faces = detector.decode(heatmap, size, offset, landmarks, np.array([2.0, 2.0], np.float32))
    assert len(faces) == 1, "NMS keeps one of two overlapping boxes"
    centre_x, centre_y = (4 + 0.5) * 4, (3 + 0.5) * 4
    expected = np.array([centre_x - 8, centre_y - 8, centre_x + 8, centre_y + 8]) * 2
    np.testing.assert_allclose(faces[0].box, expected)
    assert faces[0].score == pytest.approx(0.9)
    np.testing.assert_allclose(faces[0].landmarks, [(centre_x * 2, centre_y * 2)] * 5)


def test_centerface_input_keeps_aspect_in_multiples_of_32() -> None:
    detector = CenterFace.__new__(CenterFace)
    detector.input_width = 320
    assert detector.input_size((480, 640)) == (320, 256)
    assert detector.input_size((100, 50)) == (64, 128), "a small frame is not upscaled past a multiple of 32"


def test_crop_box_grows_by_margin_and_clips_to_frame() -> None:
    assert crop_box((100, 100, 200, 200), (480, 640), margin=0.25) == (75, 75, 225, 225)
    assert crop_box((0, 10, 50, 60), (40, 640), margin=0.5) == (0, 0, 75, 40)


def test_face_crops_convert_like_the_dataset() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    frame = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    crops = FaceCropper(margin=0.0).crops(frame, [Face((10, 20, 50, 70), 0.9)])
    expected = Image.fromarray(rgb[20:70, 10:50]).convert("L").resize((28, 28), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(crops[0], np.asarray(expected))
    assert FaceCropper().crops(frame, []).shape == (0, 28, 28)


@pytest.mark.parametrize("margin", [0.0, 0.36, None])
def test_a_photo_and_its_frame_are_cut_alike(margin: float | None) -> None:
    """Training cuts decoded photos (PIL), deployment cuts camera frames (BGR arrays): the same pixels."""
    rgb = np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    cropper, face = FaceCropper(margin=margin), Face((10.5, 20.2, 50.7, 70.1), 0.9)
    np.testing.assert_array_equal(
        cropper.crop(Image.fromarray(rgb), face), cropper.crop(np.ascontiguousarray(rgb[:, :, ::-1]), face)
    )


def test_onnx_export_matches_the_checkpoint(models: dict[str, Path]) -> None:
    crops = load_image_folder(models["data"] / "Test").images[:, 0].numpy()
    parity = check_parity(models["ckpt"], models["onnx"], crops)
    assert parity.same_labels and parity.max_abs_diff < 1e-5 and parity.images == 12
    torch_model, onnx_model = TorchClassifier(models["ckpt"]), OnnxClassifier(models["onnx"])
    assert onnx_model.threshold == pytest.approx(torch_model.threshold)
    assert onnx_model.classes == ("WithoutMask", "WithMask")


def test_classifier_loading_errors(tmp_path: Path, models: dict[str, Path]) -> None:
    with pytest.raises(FacemaskError, match="model file not found"):
        load_classifier(tmp_path / "missing.ckpt")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(FacemaskError, match=r"junk\.onnx: not a readable ONNX model"):
        load_classifier(tmp_path / "junk.onnx")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(FacemaskError, match=r"junk\.ckpt: not a facemask checkpoint") as err:
        load_classifier(tmp_path / "junk.ckpt")
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value), "never torch's advice"
    other = tmp_path / "other.onnx"
    onnx_bytes = models["onnx"].read_bytes().replace(b"p_mask", b"logits")  # same graph, foreign output name
    other.write_bytes(onnx_bytes)
    with pytest.raises(FacemaskError, match="not a model exported by 'facemask export'"):
        load_classifier(other)


def test_predict_labels_files_and_reports_bad_ones(tmp_path: Path, models: dict[str, Path]) -> None:
    folder = models["data"] / "Test"
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "empty.jpg").write_bytes(b"")
    files = [*image_files([folder]), tmp_path / "broken.png", tmp_path / "empty.jpg"]
    rows, errors = predict_files(load_classifier(models["onnx"]), files, progress=False)
    assert len(rows) == 12 and len(errors) == 2
    assert errors[0].startswith(f"{tmp_path / 'broken.png'}: ") and "empty file" in errors[1]
    correct = sum(row.label == Path(row.file).parent.name for row in rows)
    assert correct >= 10, "the tiny model learnt the toy faces"

    out = io.StringIO()
    render(rows, "table", Console(file=out, width=200))
    assert rows[0].tag in out.getvalue() and str(files[0]) in out.getvalue()


def test_predict_formats(capsys: pytest.CaptureFixture, models: dict[str, Path]) -> None:
    rows, _ = predict_files(
        load_classifier(models["ckpt"]), list(image_files([models["data"] / "Test"])), progress=False
    )
    render(rows, "csv", Console())
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["file"] for r in table] == [r.file for r in rows]
    assert all(
        float(r["p_mask"]) == pytest.approx(row.p_mask, abs=1e-6) for r, row in zip(table, rows, strict=True)
    )
    render(rows, "json", Console())
    data = json.loads(capsys.readouterr().out)
    assert data[0].keys() >= {"file", "label", "p_mask", "threshold", "box"} and len(data) == 12


def test_image_files_rejects_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FacemaskError, match="no such file or folder"):
        list(image_files([tmp_path / "nope"]))


class CentreFace:
    """A stand-in detector: one face in the middle of every frame."""

    def __call__(self, frame: np.ndarray) -> list[Face]:
        h, w = frame.shape[:2]
        return [Face((w / 4, h / 4, 3 * w / 4, 3 * h / 4), 0.99)]


def write_video(path: Path, frames: int, size: tuple[int, int] = (96, 64)) -> Path:
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        gray = cv2.resize(face(i % 2 == 0, rng), size)
        writer.write(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def faces_only(models: dict[str, Path]) -> CameraSession:
    """detect's pipeline with the centre-face detector and no people."""
    return CameraSession("test", FaceCropper(CentreFace()), load_classifier(models["onnx"]), None)


def test_detection_loop_writes_video_and_log(tmp_path: Path, models: dict[str, Path]) -> None:
    video = write_video(tmp_path / "in.mp4", 12)
    log = tmp_path / "log.jsonl"
    summary = run_detection(open_source(str(video)), faces_only(models), tmp_path / "out.mp4", JsonLines(log))
    assert (summary.frames, summary.faces, summary.interrupted) == (12, 12, False)
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 12
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (96, 64)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(12))
    assert [r["time"] for r in records[:3]] == [0.0, 0.1, 0.2], "a file's frames at the video's own time"
    assert records[0]["faces"][0]["label"] in ("WithMask", "WithoutMask")


def test_interrupt_finalises_the_video(tmp_path: Path, models: dict[str, Path]) -> None:
    def frames():
        source = open_source(str(write_video(tmp_path / "in.mp4", 10)))
        for i, item in enumerate(source.frames):
            if i == 5:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of the stream
            yield item

    summary = run_detection(Source(frames(), 10.0, True), faces_only(models), tmp_path / "out.mp4")
    assert summary.interrupted and summary.frames == 5
    assert cv2.VideoCapture(str(tmp_path / "out.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 5


def test_image_folder_source_skips_unreadable_images(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    Image.fromarray(face(True, np.random.default_rng(0))).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"garbage")
    names = [name for name, _ in open_source(str(tmp_path)).frames]
    assert names == [str(tmp_path / "a.png")]
    assert "skipped:" in capsys.readouterr().err


def test_unavailable_camera_and_missing_source() -> None:
    with pytest.raises(FacemaskError, match="camera 9 cannot be opened"):
        open_source("9")
    with pytest.raises(FacemaskError, match="no such camera, file, folder or stream URL"):
        open_source("missing.mp4")


def test_stills_carry_the_face_box_and_no_fps_counter(tmp_path: Path, models: dict[str, Path]) -> None:
    """An annotated photo shows the detector's box (the crop, face + margin, is only in the log) and no FPS
    counter: a still has no frame rate."""
    frame = np.full((200, 300, 3), 128, np.uint8)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), frame)
    log = tmp_path / "log.jsonl"
    run_detection(open_source(str(tmp_path / "in")), faces_only(models), tmp_path / "out", JsonLines(log))
    out = cv2.imread(str(tmp_path / "out" / "000000_a.jpg")).astype(int)
    (record,) = json.loads(log.read_text())["faces"]
    left, top, _, bottom = (round(v) for v in record["box"])
    assert record["crop"][0] < left - 5, "the crop is wider than the face"
    grey = lambda pixels: np.abs(pixels - 128).max() < 12  # noqa: E731 (JPEG)
    assert not grey(out[(top + bottom) // 2, left]), "the face box's edge is drawn"
    assert grey(out[(top + bottom) // 2, record["crop"][0]]), "the crop's edge is not"
    assert grey(out[:30, : left - 5]), "no FPS counter top-left"
