"""Operating point and calibration: which threshold on P(WithMask) to use, and how far to trust the scores.

The bank decides which error costs more, so the threshold is chosen on the validation split to meet a
target precision (or recall) of WithMask, then used on every other split. Where the bar is set on both (the
bank's: precision and recall above 98%), ``balanced`` chooses the threshold whose lower one is highest.

The decision rule is ``facemask.decision.is_mask`` (P(WithMask) > threshold, as torchmetrics' ``threshold=``).
The thresholds returned here lie halfway between two validation scores, so no validation score sits on one.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_calibration_error,
    binary_f1_score,
    binary_precision,
    binary_precision_recall_curve,
    binary_recall,
    binary_specificity,
)

log = logging.getLogger(__name__)

#: For each metric a target can be set on, the metric maximised while meeting it.
OTHER_METRIC = {"precision": "recall", "recall": "precision"}


def threshold_for(
    probs: Tensor,
    labels: Tensor,
    metric: str = "precision",
    target: float | None = 0.99,
    warn: bool = True,
) -> float:
    """The threshold on P(WithMask) that meets ``metric >= target`` on these scores with the other metric highest;
    with ``metric="balanced"`` (``target`` unused), the one where min(precision, recall) is highest.

    Ties in the other metric go to the threshold with the higher ``metric`` (balanced: the higher precision):
    at equal recall, fewer false positives. If no threshold meets the target, the one that comes closest is
    returned, with a warning (``warn=False``: at debug level, for the early epochs of training).
    """
    if metric not in (*OTHER_METRIC, "balanced"):
        raise ValueError(f"metric must be one of {sorted(OTHER_METRIC)} or 'balanced', got {metric!r}")
    precision, recall, scores = binary_precision_recall_curve(probs, labels.long())
    # The curve's last point (precision 1, recall 0) predicts nothing and has no threshold.
    curves = {"precision": precision[:-1], "recall": recall[:-1]}
    if metric == "balanced":
        lower = torch.minimum(curves["precision"], curves["recall"])
        best = best_index(lower, curves["precision"], torch.ones_like(lower, dtype=torch.bool))
        return decision_thresholds(scores)[best].item()
    chosen, other = curves[metric], curves[OTHER_METRIC[metric]]
    met = chosen >= target
    if met.any():
        best = best_index(other, chosen, met)
    else:
        best = best_index(chosen, other, torch.ones_like(met))
        log.log(
            logging.WARNING if warn else logging.DEBUG,
            "No threshold reaches %s >= %g on these scores; using the closest: %s %.4f, %s %.4f",
            metric,
            target,
            metric,
            chosen[best].item(),
            OTHER_METRIC[metric],
            other[best].item(),
        )
    return decision_thresholds(scores)[best].item()


def best_index(primary: Tensor, secondary: Tensor, allowed: Tensor) -> int:
    """Index of the highest ``primary`` among ``allowed``, ties broken by the highest ``secondary``."""
    top = allowed & (primary == primary[allowed].max())
    return int(torch.where(top, secondary, -torch.inf).argmax())


def decision_thresholds(scores: Tensor) -> Tensor:
    """For ascending unique scores (curve points ``p >= score``), thresholds giving the same split with ``p > t``.

    Halfway to the next lower score (or 0); if the two are adjacent floats, the lower one itself.
    """
    lower = torch.cat([scores.new_zeros(1), scores[:-1]])
    middle = (scores + lower) / 2
    return torch.where(middle < scores, middle, lower)


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """Mean gap between P(WithMask) and the observed fraction of WithMask, over equal-width bins."""
    return binary_calibration_error(probs, labels.long(), n_bins=n_bins, norm="l1").item()


def reliability_bins(probs: Tensor, labels: Tensor, n_bins: int = 15) -> tuple[Tensor, Tensor, Tensor]:
    """Per equal-width bin of P(WithMask): mean probability, fraction WithMask and count (a reliability diagram).

    Binned as torchmetrics bins for the ECE, except that p = 1 joins the last bin instead of one of its own.
    """
    edges = torch.linspace(0, 1, n_bins + 1, dtype=probs.dtype, device=probs.device)
    index = (torch.bucketize(probs, edges, right=True) - 1).clamp(0, n_bins - 1)
    counts = torch.zeros(n_bins, dtype=probs.dtype, device=probs.device).index_add_(
        0, index, torch.ones_like(probs)
    )
    sums = torch.zeros_like(counts).index_add_(0, index, probs)
    positives = torch.zeros_like(counts).index_add_(0, index, labels.to(probs.dtype))
    return sums / counts.clamp(min=1), positives / counts.clamp(min=1), counts


def operating_point(probs: Tensor, labels: Tensor, threshold: float) -> dict[str, float]:
    """Scores of the classifier that predicts WithMask when P(WithMask) > threshold."""
    labels, threshold = labels.long(), float(threshold)
    return {
        "acc": binary_accuracy(probs, labels, threshold=threshold).item(),
        "precision": binary_precision(probs, labels, threshold=threshold).item(),
        "recall": binary_recall(probs, labels, threshold=threshold).item(),
        "f1": binary_f1_score(probs, labels, threshold=threshold).item(),
        "fpr": 1 - binary_specificity(probs, labels, threshold=threshold).item(),
    }
