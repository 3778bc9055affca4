"""Issue 20's ablation table: mean ± std over seeds of each arm's runs, with the false-mask rates under
synthetic occluders and the minutes each run took.

Each run folder is ``RUNS/<arm>_s<seed>/`` (``python train.py experiment=best ablation=ARM seed=S
hydra.run.dir=RUNS/ARM_sS``). For every run the best checkpoint's hard-negative report (hand, scarf, beard over
Test's bare faces, ``evaluation/hard_negatives.py``, as ``python -m facemask.evaluate`` writes it) goes to
``<run>/robustness/``; minutes come from the first and last line of its train.log; ms per face and detect FPS
from ``<run>/bench.json`` where ``facemask bench`` saved it there.

    python scripts/ablation_table.py RUNS [--out RUNS/ablation.md]
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

from facemask.data.folder import load_image_folder
from facemask.data.photos import at_spec, photo_paths
from facemask.data.root import dataset_of, find_data_root, find_split
from facemask.evaluation.hard_negatives import hard_negative_report
from facemask.evaluation.tables import aggregate, markdown_table
from facemask.module import load_checkpoint

COLUMNS = {
    "test/acc": "Test acc",
    "test/precision": "Test precision",
    "test/recall": "Test recall",
    "realworld/acc": "rw acc",
    "realworld/precision": "rw precision",
    "realworld/recall": "rw recall",
    "realworld_detected/acc": "rw detected",
    "val_dataset/acc": "val_dataset",
    "val_real/acc": "val_real",
    "val_masked/acc": "val_masked",
    "val_bare/acc": "val_bare",
    "bare_val/mask_rate": "bare/val false masks",
    "hand_s3": "hand s3",
    "scarf_s3": "scarf s3",
    "beard_s3": "beard s3",
    "incorrect/mask_rate": "incorrect called masks",
    "val/threshold": "threshold",
    "ms_per_face": "ms/face",
    "detect_fps": "detect FPS",
    "minutes": "min",
}
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+\]")


def minutes(log: Path) -> float:
    """Wall minutes between the first and the last time-stamped line of a train.log."""
    stamps = [m.group(1) for line in log.read_text().splitlines() if (m := STAMP.match(line))]
    first, last = (datetime.fromisoformat(s) for s in (stamps[0], stamps[-1]))
    return (last - first).total_seconds() / 60


def occluder_rates(run: Path) -> dict[str, float]:
    """False-mask rate under a hand, scarf and beard of size 3 on Test's bare faces, best checkpoint."""
    checkpoint = min(run.glob("checkpoints/epoch_*.ckpt"))
    model = load_checkpoint(checkpoint)
    root = find_data_root()
    test = load_image_folder(find_split(dataset_of(root), "Test"))
    test = at_spec(test, photo_paths(root / "photos", test), model.spec)  # Test at the model's input spec
    rows = hard_negative_report(
        model.predict_proba, test.floats(), test.labels, run / "robustness", float(model.threshold)
    )
    return {f"{row['occluder']}_s3": row["false_mask_rate"] for row in rows if row["severity"] == 3}


def bench_figures(run: Path) -> dict[str, float]:
    """ONNX ms per face (one thread) and detect FPS at 640x480, where ``facemask bench`` saved them in the run
    (``facemask bench <run>/checkpoints/epoch_NNN.ckpt --output <run>/bench.json``)."""
    if not (run / "bench.json").is_file():
        return {}
    onnx = json.loads((run / "bench.json").read_text())["onnx"]
    return {"ms_per_face": onnx["latency_ms"], "detect_fps": onnx["fps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for metrics in sorted(args.runs.glob("*_s*/metrics.json")):
        run = metrics.parent
        arm = run.name.rsplit("_s", 1)[0]
        rows.append(
            {
                "arm": arm,
                **json.loads(metrics.read_text()),
                **occluder_rates(run),
                **bench_figures(run),
                "minutes": minutes(run / "train.log"),
            }
        )
    table = markdown_table(
        [
            {"arm": row["arm"], "n": row["n"], **{COLUMNS[k]: row.get(k) for k in COLUMNS}}
            for row in aggregate(rows, "arm", list(COLUMNS))
        ],
        ["arm", "n", *COLUMNS.values()],
    )
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
