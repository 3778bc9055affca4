"""``facemask soak``: the pipeline over a looped video, memory and open files sampled, logs rolled over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facemask import cli
from tests.unit.test_tracking import write_walk


def test_soak_loops_the_video_samples_memory_and_rolls_the_logs(
    tmp_path: Path, models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    video = write_walk(tmp_path / "walk.mp4", 30)
    argv = [
        "soak",
        str(models["onnx"]),
        "--source",
        str(video),
        "--frames",
        "100",
        "--output",
        str(tmp_path / "soak"),
    ]
    assert cli.main([*argv, "--rotate-mb", "0.002"]) == 0
    result = json.loads((tmp_path / "soak" / "soak.json").read_text())
    assert result["frames"] == 100, "the 30-frame video played 4 times"
    samples = result["samples"]
    assert [s["frame"] for s in samples] == [*range(0, 100, 5), 100]
    assert all(s["rss_mb"] > 50 and s["open_files"] > 2 for s in samples)
    assert {"detections.jsonl", "detections.jsonl.1"} <= set(result["log_files"]), "the log rolled over"
    assert "after warm-up memory grew" in capsys.readouterr().err


def test_soak_refuses_what_it_cannot_play(
    tmp_path: Path, models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "notes.mp4").write_text("not a video")
    assert cli.main(["soak", str(models["onnx"]), "--source", str(tmp_path / "notes.mp4")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'notes.mp4'}: not a video OpenCV can read\n"
    assert cli.main(["soak", str(models["onnx"]), "--source", "x.mp4", "--frames", "0"]) == 1
    assert capsys.readouterr().err == "error: --frames 0: at least 1\n"
