"""The decision rule and the tag that shows a decision with its confidence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facemask.decision import confidence, is_mask, tag


def test_the_rule_is_strict_for_floats_arrays_and_tensors() -> None:
    assert not is_mask(0.5, 0.5) and is_mask(0.5001, 0.5)
    assert is_mask(np.array([0.2, 0.5, 0.9]), 0.5).tolist() == [False, False, True]
    assert is_mask(torch.tensor([0.2, 0.5, 0.9]), 0.5).tolist() == [False, False, True]


@pytest.mark.parametrize(
    ("p", "threshold", "expected"),
    [
        (0.881, 0.889, "no mask 50%"),  # under the threshold, barely: a coin flip, not "no mask 12%"
        (0.0, 0.889, "no mask 100%"),
        (1.0, 0.889, "mask 100%"),
        (0.9445, 0.889, "mask 75%"),  # halfway between the threshold and 1
        (0.25, 0.5, "no mask 75%"),
    ],
)
def test_a_tag_never_contradicts_its_label(p: float, threshold: float, expected: str) -> None:
    label = "WithMask" if is_mask(p, threshold) else "WithoutMask"
    assert tag(label, confidence(p, threshold)) == expected


def test_confidence_is_at_least_a_half_and_grows_away_from_the_threshold() -> None:
    for threshold in (0.03, 0.5, 0.97):
        values = [confidence(p, threshold) for p in np.linspace(0, 1, 101)]
        assert min(values) >= 0.5 and max(values) <= 1.0
        below = [v for p, v in zip(np.linspace(0, 1, 101), values, strict=True) if p <= threshold]
        assert below == sorted(below, reverse=True)
