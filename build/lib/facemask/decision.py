"""The decision rule: a face wears a mask when P(WithMask) is strictly above the model's threshold.

Strictly above, as torchmetrics binarises scores (``preds > threshold``), so that the metrics a run logs, the
thresholds calibration picks and the labels predict, detect and serve give agree on every face. Written for
floats, numpy arrays and torch tensors alike; torch-free, as the ONNX path needs.
"""

from __future__ import annotations

from typing import TypeVar

Scores = TypeVar("Scores")


def is_mask(p: Scores, threshold: float) -> Scores:
    """WithMask where ``p`` (P(WithMask)) > ``threshold``: a bool, or a boolean array/tensor like ``p``."""
    return p > threshold
