"""Sweep summary: after ``python train.py -m ...``, one table row per job (its overrides and metrics)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

#: Metric columns shown in the Markdown table (the CSV keeps every metric).
TABLE_METRICS = (
    "test/acc",
    "test/precision",
    "test/recall",
    "test/f1",
    "test/auroc",
    "val/acc",
    "realworld/acc",
    "model/params",
    "model/macs",
)


def collect_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Rows of ``{"job", "overrides", <metric>: value}`` from each job folder holding a metrics.json."""
    rows = []
    for metrics_file in sorted(sweep_dir.glob("*/metrics.json"), key=lambda p: _job_order(p.parent.name)):
        job_dir = metrics_file.parent
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = OmegaConf.load(overrides_file) if overrides_file.exists() else []
        rows.append(
            {"job": job_dir.name, "overrides": " ".join(overrides), **json.loads(metrics_file.read_text())}
        )
    return rows


def write_summary(sweep_dir: Path, rows: list[dict[str, Any]]) -> str:
    """summary.csv (every column) and summary.md (main metrics, swept overrides); returns the Markdown."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(sweep_dir / "summary.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    shown = ["job", "overrides", *(m for m in TABLE_METRICS if m in columns)]
    swept = swept_overrides([row["overrides"] for row in rows])
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += [
        "| " + " | ".join(_cell({**row, "overrides": job}.get(key)) for key in shown) + " |"
        for row, job in zip(rows, swept, strict=True)
    ]
    markdown = "\n".join(lines) + "\n"
    (sweep_dir / "summary.md").write_text(markdown)
    return markdown


def swept_overrides(overrides: list[str]) -> list[str]:
    """Each job's overrides less those shared by every job: what the sweep varied."""
    shared = set.intersection(*(set(job.split()) for job in overrides)) if len(overrides) > 1 else set()
    return [" ".join(o for o in job.split() if o not in shared) for job in overrides]


class SweepSummary(Callback):
    """Hydra callback (conf/hydra/default.yaml) that writes the summary when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect_jobs(sweep_dir)
        if not rows:
            log.warning("no finished jobs with metrics.json in %s: no summary written", sweep_dir)
            return
        markdown = write_summary(sweep_dir, rows)
        print(f"\nSweep summary ({sweep_dir / 'summary.csv'}):\n{markdown}")


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value if value is not None else "")


def _job_order(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)
