"""Which CenterFace input width to default to: the share of annotated faces found, and the time per frame, at
each width, on real photos letterboxed into 640x480 camera frames (faces as small as at a door).

    python scripts/detector_width.py ../shared/data/realmasks --widths 320 480 640
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections import defaultdict
from pathlib import Path

from facemask.bench import letterbox
from facemask.data.photos import matching_face
from facemask.vision.faces import CenterFace
from facemask.vision.images import load_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data", type=Path, help="a folder with boxes.csv (file,x0,y0,x1,y1,...) and its photos"
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5], help="photo size in the frame")
    args = parser.parse_args()
    boxes: dict[Path, list[tuple[float, ...]]] = defaultdict(list)
    with (args.data / "boxes.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            boxes[args.data / row["file"]].append(tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1")))
    photos = {path: load_frame(path) for path in sorted(boxes)}
    print(f"{len(photos)} photos, {sum(map(len, boxes.values()))} annotated faces")
    print("| width | photo scale | faces found | median face width px | ms per frame |")
    print("|---|---|---|---|---|")
    for scale_down in args.scales:
        for width in args.widths:
            detector, found, total, sizes, times = CenterFace(input_width=width), 0, 0, [], []
            for path, photo in photos.items():
                frame, scale, left, top = letterbox(photo, scale_down)
                start = time.perf_counter()
                faces = detector(frame)
                times.append(time.perf_counter() - start)
                for x0, y0, x1, y1 in boxes[path]:
                    box = (x0 * scale + left, y0 * scale + top, x1 * scale + left, y1 * scale + top)
                    sizes.append(box[2] - box[0])
                    total += 1
                    found += matching_face(box, faces) is not None
            print(
                f"| {width} | {scale_down:g} | {found / total:.3f} ({found}/{total}) | "
                f"{statistics.median(sizes):.0f} | {statistics.median(times) * 1000:.1f} |"
            )


if __name__ == "__main__":
    main()
