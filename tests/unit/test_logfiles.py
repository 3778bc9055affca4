"""Logs that run for months: JSON-lines files roll over by size and keep a bounded number of old ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facemask import cli
from facemask.errors import FacemaskError
from facemask.inference.logfiles import JsonLines


def test_the_log_rolls_over_at_its_size_and_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "detections.jsonl"
    log = JsonLines(path, max_mb=2000 / 2**20, keep=2)  # 2,000 bytes a file
    for index in range(100):
        log.write({"frame": index, "padding": "x" * 80})  # ~100 bytes a line
    log.close()
    files = sorted(path.parent.iterdir())
    assert [f.name for f in files] == ["detections.jsonl", "detections.jsonl.1", "detections.jsonl.2"]
    assert all(f.stat().st_size <= 2000 for f in files)
    frames = [
        json.loads(line)["frame"]
        for f in (files[2], files[1], files[0])
        for line in f.read_text().splitlines()
    ]
    assert frames == list(range(frames[0], 100)), "the newest lines, in order, none lost between files"
    assert len(frames) > 40


def test_without_a_size_the_log_only_grows(tmp_path: Path) -> None:
    log = JsonLines(tmp_path / "a.jsonl", max_mb=None)
    for index in range(50):
        log.write({"frame": index})
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 50


def test_bad_sizes_and_places_are_one_line_errors(
    tmp_path: Path, models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(FacemaskError, match="--rotate-mb 0"):
        JsonLines(tmp_path / "a.jsonl", max_mb=0)
    (tmp_path / "file").write_text("")
    with pytest.raises(FacemaskError, match="cannot write here"):
        JsonLines(tmp_path / "file" / "a.jsonl")
    assert cli.main(["detect", str(models["onnx"]), "--source", "x.mp4", "--rotate-mb", "-1"]) == 1
    assert capsys.readouterr().err == "error: --rotate-mb -1.0: a size in MB, more than 0\n"
