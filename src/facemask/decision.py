"""The decision rule: a face wears a mask when P(WithMask) is strictly above the model's threshold; and the
tag that shows a decision with its confidence, the same in detect, serve and predict.

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


#: What a tag calls each class.
SHORT = {"WithMask": "mask", "WithoutMask": "no mask"}


def confidence(p: float, threshold: float) -> float:
    """How sure the decision at ``threshold`` is: 0.5 at the threshold, 1 at p = 1 (mask) or p = 0 (no mask).

    Measured from the threshold, not from 0.5, so that it never contradicts the label: P(mask) 0.881 under a
    threshold of 0.889 is "no mask 50%" (a coin flip), where 1 - p would say "no mask 12%".
    """
    if is_mask(p, threshold):
        return 0.5 + 0.5 * (p - threshold) / max(1 - threshold, 1e-9)
    return 0.5 + 0.5 * (threshold - p) / max(threshold, 1e-9)


def tag(label: str, sureness: float) -> str:
    """``mask 97%`` / ``no mask 50%``: a decision and its confidence, as boxes and tables show them."""
    return f"{SHORT[label]} {sureness:.0%}"
