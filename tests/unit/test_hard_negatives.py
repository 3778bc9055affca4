"""Hard negatives: occluders over the mouth of unmasked faces, and the false-mask rate they cause."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from facemask.evaluation.hard_negatives import CHIN, COVERAGE, OCCLUDERS, hard_negative_report


@pytest.mark.parametrize("name", sorted(OCCLUDERS))
def test_occluders_cover_the_lower_face_only_and_grow(name: str) -> None:
    faces = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    changed = [(OCCLUDERS[name](faces, coverage) != faces).any(dim=(0, 1)) for coverage in COVERAGE]
    top = round((CHIN - COVERAGE[-1]) * 28)
    assert not changed[-1][:top].any(), "nothing above the largest coverage"
    assert all(a.sum() < b.sum() for a, b in itertools.pairwise(changed)), "larger severity, more covered"
    assert OCCLUDERS[name](faces, 0.2).min() >= 0 and OCCLUDERS[name](faces, 0.2).max() <= 1
    assert torch.equal(OCCLUDERS[name](faces, 0.2), OCCLUDERS[name](faces, 0.2)), "deterministic"


def test_report_counts_unmasked_faces_called_mask(tmp_path: Path) -> None:
    faces = torch.full((10, 1, 28, 28), 0.5)
    labels = torch.tensor([0] * 6 + [1] * 4)

    def says_mask_when_the_lower_face_is_dark(images: torch.Tensor) -> torch.Tensor:
        return (images[..., 22:, 10:18].mean(dim=(1, 2, 3)) < 0.4).float()

    rows = hard_negative_report(says_mask_when_the_lower_face_is_dark, faces, labels, tmp_path, threshold=0.5)
    assert len(rows) == 1 + len(OCCLUDERS) * 5 and all(row["n"] == 6 for row in rows)
    rates = {(row["occluder"], row["severity"]): row["false_mask_rate"] for row in rows}
    assert rates[("none", 0)] == 0.0 and rates[("beard", 3)] == 1.0, "a dark beard fools this model"
    assert rates[("hand", 3)] == 0.0, "a skin-coloured hand does not"
    assert {p.name for p in tmp_path.iterdir()} == {
        "hard_negatives.csv",
        "hard_negatives.md",
        "hard_negatives_examples.png",
    }
