"""Accuracy per group (mask type) of a test set whose ``labels.csv`` names a group for each file.

../shared/data/realworld/labels.csv (beside the ``mask28/`` root) has ``file,class,mask_type,person`` with
``file`` relative to that root: the breakdown shows which real masks the model misses (dark, patterned...).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from facemask.data.folder import ImageSet
from facemask.decision import is_mask

GROUP_COLUMN = "mask_type"


def find_labels(root: Path) -> Path | None:
    """``labels.csv`` in the test set's root or beside it."""
    return next((path for path in (root / "labels.csv", root.parent / "labels.csv") if path.is_file()), None)


def file_groups(labels_csv: Path, column: str = GROUP_COLUMN) -> dict[str, str]:
    """file (relative, forward slashes) -> group."""
    with open(labels_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    if rows and column not in rows[0]:
        return {}
    return {row["file"].replace("\\", "/"): row[column] for row in rows}


def group_accuracy(
    name: str,
    images: ImageSet,
    root: Path,
    probs: torch.Tensor,
    threshold: float,
    pools: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float]:
    """``{name}/acc/{group}`` (and ``{name}/n/{group}``) for every group of the set's labels.csv, and for
    every pool of groups in ``pools`` (``dark: [cloth_black, surgical_black]``); {} without a labels.csv."""
    labels_csv = find_labels(root)
    groups = file_groups(labels_csv) if labels_csv else {}
    if not groups:
        return {}
    correct: dict[str, list[bool]] = defaultdict(list)
    predicted = is_mask(probs, threshold).long()
    for path, label, guess in zip(images.paths, images.labels.tolist(), predicted.tolist(), strict=True):
        group = groups.get(Path(path).relative_to(root).as_posix())
        if group is not None:
            correct[group].append(label == guess)
    for pool, members in (pools or {}).items():
        if hits := [hit for member in members for hit in correct.get(member, [])]:
            correct[pool] = hits
    scores = {}
    for group, hits in sorted(correct.items()):
        scores[f"{name}/acc/{group}"] = sum(hits) / len(hits)
        scores[f"{name}/n/{group}"] = float(len(hits))
    return scores
