"""Per-frame vs per-person accuracy of ``facemask detect``'s tracking and vote, and its FPS and peak memory.

Builds a 640x480 video from the realworld photos of known label: each walk is one person with one class
(labels.csv ``person``, ``class``): their photos in sequence, each held ``--hold`` frames, drifting slowly
across the frame in one of two lanes, so one or two people are in view at a time. Then runs
``facemask detect MODEL --source walk.mp4 --log --events`` in a subprocess (FPS from its summary, peak
RSS from the OS) and scores:

- per frame: each face's own label against the true class of the walk it lies in;
- per person: each event's voted label against the true class of the walk its track mostly lay in.

    python scripts/tracking_eval.py model.onnx [--data ../shared/data/realworld] [--out /tmp/tracking_eval]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

FRAME = (640, 480)
LANES = (40, 280)  # top of each lane's 160 px photos
STEP = 3  # px per frame: a slow walk


def walks(data: Path) -> list[tuple[str, str, list[Path]]]:
    """(person, class, photos) per person and class, in labels.csv order."""
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    with open(data / "labels.csv") as f:
        for row in csv.DictReader(f):
            groups[row["person"], row["class"]].append(data / "photos" / row["file"])
    return [(person, label, files) for (person, label), files in groups.items()]


def make_video(data: Path, path: Path, hold: int, gap: int) -> list[dict]:
    """Writes the walks (alternating lanes, ``gap`` empty frames between two in a lane); returns each
    frame's walkers: ``[{"walk": i, "class": ..., "rect": [l, t, r, b]}]`` per frame."""
    plan = walks(data)
    lanes: list[list[tuple[int, int, int]]] = [[], []]  # per lane: (walk, start frame, frames)
    ends = [0, 0]
    for i, (_, _, files) in enumerate(plan):
        lane = int(np.argmin(ends))
        lanes[lane].append((i, ends[lane], hold * len(files)))
        ends[lane] += hold * len(files) + gap
    truth: list[list[dict]] = [[] for _ in range(max(ends))]
    for lane, top in zip(lanes, LANES, strict=True):
        for walk, start, length in lane:
            for k in range(length):
                left = min(20 + STEP * k, FRAME[0] - 160)
                rect = [left, top, left + 160, top + 160]
                truth[start + k].append(
                    {"walk": walk, "class": plan[walk][1], "rect": rect, "photo": k // hold}
                )
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, FRAME)
    for walkers in truth:
        frame = np.full((FRAME[1], FRAME[0], 3), 90, np.uint8)
        for w in walkers:
            left, top, right, bottom = w["rect"]
            frame[top:bottom, left:right] = cv2.resize(
                cv2.imread(str(plan[w["walk"]][2][w["photo"]])), (160, 160)
            )
        writer.write(frame)
    writer.release()
    return truth


def walk_of(box: list[float], walkers: list[dict]) -> dict | None:
    """The walker whose photo holds the face box's centre."""
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return next(
        (w for w in walkers if w["rect"][0] <= x < w["rect"][2] and w["rect"][1] <= y < w["rect"][3]), None
    )


def score(log: Path, events: Path, truth: list[list[dict]]) -> dict:
    frame_hits, frame_total, tracks = 0, 0, defaultdict(Counter)
    for line in log.read_text().splitlines():
        record = json.loads(line)
        for face in record["faces"]:
            walker = walk_of(face["box"], truth[record["frame"]])
            if walker is None:
                continue
            frame_total += 1
            frame_hits += face["label"] == walker["class"]
            if face.get("track") is not None:
                tracks[face["track"]][walker["walk"], walker["class"]] += 1
    people = [json.loads(line) for line in events.read_text().splitlines()]
    walk_of_event = {p["id"]: tracks[p["id"]].most_common(1)[0][0] for p in people if tracks[p["id"]]}
    person_hits = sum(p["label"] == walk_of_event[p["id"]][1] for p in people if p["id"] in walk_of_event)
    walks_seen = len({w["walk"] for frame in truth for w in frame})
    return {
        "faces": frame_total,
        "per_frame_accuracy": frame_hits / frame_total,
        "events": len(people),
        "walks": walks_seen,
        "walks_with_an_event": len(set(walk_of_event.values())),
        "per_person_accuracy": person_hits / len(people),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument(
        "--data", default="../shared/data/realworld", help="realworld/: photos/ and labels.csv"
    )
    parser.add_argument("--out", default="/tmp/tracking_eval")
    parser.add_argument(
        "--hold", type=int, default=8, help="frames each photo is shown (default %(default)s)"
    )
    parser.add_argument(
        "--gap", type=int, default=40, help="empty frames between walks in a lane: > the track patience (30)"
    )
    args, detect_args = parser.parse_known_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = make_video(Path(args.data), out / "walk.mp4", args.hold, args.gap)
    command = [sys.executable, "-m", "facemask.cli", "detect", args.model, "--source", str(out / "walk.mp4"),
               "--log", str(out / "walk.jsonl"), "--events", str(out / "walk.events.jsonl"), *detect_args]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    results = score(out / "walk.jsonl", out / "walk.events.jsonl", truth)
    results |= {"frames": summary["frames"], "fps": summary["fps"]}
    results["peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
