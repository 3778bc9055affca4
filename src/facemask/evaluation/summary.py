"""Sweep summary: after ``python train.py -m ...``, one table row per job (its overrides and metrics)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from facemask.evaluation.tables import aggregate, markdown_table, write_csv

log = logging.getLogger(__name__)

#: Metric columns shown in the Markdown table (the CSV keeps every metric).
TABLE_METRICS = (
    "test/acc",
    "test/precision",
    "test/recall",
    "test/f1",
    "test/auroc",
    "val/acc",
    "val_real/acc",
    "val_masked/acc",
    "val_bare/acc",
    "val/threshold",
    "bare_val/mask_rate",
    "incorrect/mask_rate",
    "realworld/acc",
    "realworld/precision",
    "realworld/recall",
    "realworld/acc/dark",
    "realworld/acc/light",
    "realworld/acc/patterned",
    "realworld_detected/acc",
    "realworld_detected/recall",
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
    """summary.csv/.md: one row per job; where jobs differ only by seed, also summary_by_config.csv/.md with
    mean ± std over the seeds. Returns the Markdown."""
    for row, swept in zip(rows, swept_overrides([row["overrides"] for row in rows]), strict=True):
        row["swept"] = swept
        row["config"] = " ".join(o for o in swept.split() if not o.startswith("seed=")) or "(all)"
    metrics = [m for m in TABLE_METRICS if any(m in row for row in rows)]
    write_csv(sweep_dir / "summary.csv", rows)
    shown = [{**row, "overrides": row["swept"]} for row in rows]
    markdown = markdown_table(shown, ["job", "overrides", *metrics])
    grouped = aggregate(rows, "config", metrics)
    if len(grouped) < len(rows):
        write_csv(sweep_dir / "summary_by_config.csv", grouped)
        markdown += "\nMean ± std over seeds:\n\n" + markdown_table(grouped, ["config", "n", *metrics])
    (sweep_dir / "summary.md").write_text(markdown)
    return markdown


def swept_overrides(overrides: list[str]) -> list[str]:
    """Each job's overrides less those shared by every job: what the sweep varied."""
    shared = set.intersection(*(set(job.split()) for job in overrides)) if len(overrides) > 1 else set()
    return [" ".join(o for o in job.split() if o not in shared) for job in overrides]


class SweepSummary(Callback):
    """Hydra callback (src/facemask/conf/hydra/default.yaml) that writes the summary when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect_jobs(sweep_dir)
        if not rows:
            log.warning("no finished jobs with metrics.json in %s: no summary written", sweep_dir)
            return
        markdown = write_summary(sweep_dir, rows)
        print(f"\nSweep summary ({sweep_dir / 'summary.csv'}):\n{markdown}")


def _job_order(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)
