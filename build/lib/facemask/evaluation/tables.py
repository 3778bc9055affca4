"""Result tables as CSV (every number) and Markdown (what a person reads), and mean ± std over runs."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """All columns of all rows, in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub Markdown table of ``columns``; floats with 4 decimals, missing cells empty."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(rows: Sequence[dict[str, Any]], key: str, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per distinct ``row[key]``: ``n``, and ``<metric>`` as "mean ± std" (the value itself where all
    runs agree) with ``<metric> mean`` and ``<metric> std``."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    summary = []
    for group, members in groups.items():
        out: dict[str, Any] = {key: group, "n": len(members)}
        for metric in metrics:
            values = [m[metric] for m in members if isinstance(m.get(metric), int | float)]
            if values:
                mean, std = mean_std(values)
                shown = (
                    values[0] if len(set(values)) == 1 else f"{mean:.4f} ± {std:.4f}"
                )  # e.g. a parameter count
                out.update({metric: shown, f"{metric} mean": mean, f"{metric} std": std})
        summary.append(out)
    return summary


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))
