"""``facemask soak``: the frame pipeline over a looped video for tens of thousands of frames, as an entrance
camera runs for months; resident memory and open files sampled on the way and compared after warm-up.

Everything a long run holds runs here as deployed: detector, classifier, tracker and vote, events, the frame
log and the events file rolling over by size. Torch-free, so that it runs on the bank's PC (light install).
Linux: memory and open files are read from /proc.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from facemask.errors import FacemaskError
from facemask.inference.classifier import load_classifier, model_cropper
from facemask.inference.events import EventSink
from facemask.inference.logfiles import JsonLines
from facemask.inference.realtime import run_detection
from facemask.inference.session import CameraSession
from facemask.inference.sources import Source, open_source
from facemask.inference.tracking import PeopleOptions

WARM_UP = 0.1  # the share of the frames after which memory should stay flat (caches, allocator pools filled)


def resident_mb() -> float:
    """This process's resident memory now (not its peak), from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def looped(video: Path, frames: int) -> Iterator[tuple[str, np.ndarray]]:
    """``frames`` frames of ``video`` played again and again (reopened each time, as a camera is after a drop)."""
    index = 0
    while index < frames:
        played = open_source(str(video)).frames
        for _, frame in itertools.islice(played, frames - index):
            yield f"{video.name}#{index}", frame
            index += 1
        played.close()
        if index == 0:
            raise FacemaskError(f"{video}: no frame could be read")


def sampled(frames: Iterator, every: int, samples: list[dict], session: CameraSession) -> Iterator:
    """The frames, with memory and open files noted every ``every`` frames (and before the first)."""
    start = time.perf_counter()
    for index, item in enumerate(frames):
        if index % every == 0:
            samples.append(sample(index, start, session))
        yield item


def sample(index: int, start: float, session: CameraSession) -> dict:
    return {
        "frame": index,
        "seconds": round(time.perf_counter() - start, 1),
        "rss_mb": round(resident_mb(), 1),
        "open_files": open_files(),
        "people": sum(session.counter.totals().values()),
    }


def run_soak(args: argparse.Namespace) -> dict:
    """The soak of ``facemask soak``'s flags; its figures, also saved as ``soak.json`` in ``args.output``."""
    video, folder = Path(args.source), Path(args.output)
    capture = cv2.VideoCapture(str(video))
    readable, fps = capture.isOpened(), capture.get(cv2.CAP_PROP_FPS) or 30.0
    capture.release()
    if not readable:
        raise FacemaskError(f"{video}: not a video OpenCV can read")
    classifier = load_classifier(args.model, args.threads)
    sink = EventSink(JsonLines(folder / "events.jsonl", args.rotate_mb))
    cropper = model_cropper(classifier, args.model, args.detector_width, args.min_score, args.margin)
    session = CameraSession("soak", cropper, classifier, PeopleOptions(), sink, fps)
    samples: list[dict] = []
    every = max(1, args.frames // 20)
    frames = sampled(looped(video, args.frames), every, samples, session)
    log = JsonLines(folder / "detections.jsonl", args.rotate_mb)
    summary = run_detection(Source(frames, fps, True, args.frames), session, log=log, progress=args.progress)
    samples.append(sample(summary.frames, time.perf_counter() - summary.seconds, session))
    warm = next(s for s in samples if s["frame"] >= WARM_UP * args.frames)
    result = {
        "frames": summary.frames,
        "fps": round(summary.fps, 1),
        "people": sum(session.counter.totals().values()),
        "rss_growth_after_warm_up_mb": round(samples[-1]["rss_mb"] - warm["rss_mb"], 1),
        "open_files_growth": samples[-1]["open_files"] - samples[0]["open_files"],
        "log_files": sorted(p.name for p in folder.iterdir()),
        "samples": samples,
    }
    (folder / "soak.json").write_text(json.dumps(result, indent=1))
    return result


def show(result: dict, console: Console) -> None:
    table = Table("frame", "seconds", "RSS MB", "open files", "people", box=None)
    for s in result["samples"]:
        table.add_row(*(str(s[key]) for key in ("frame", "seconds", "rss_mb", "open_files", "people")))
    console.print(table)
    console.print(
        f"{result['frames']} frames at {result['fps']} FPS, {result['people']} people; after warm-up "
        f"memory grew {result['rss_growth_after_warm_up_mb']} MB (target ≤ 10), open files "
        f"{result['open_files_growth']:+d}; files: {', '.join(result['log_files'])}"
    )
