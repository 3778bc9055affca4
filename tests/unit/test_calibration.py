"""Operating point and calibration: thresholds against brute force, ECE by hand, the PR and reliability figures."""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import pytest
import torch
from torchmetrics.functional.classification import binary_precision_recall_curve

from facemask.evaluation.calibration import (
    expected_calibration_error,
    operating_point,
    reliability_bins,
    threshold_for,
)
from facemask.evaluation.figures import pr_figure, reliability_figure


def overlapping_scores(seed: int, n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores that separate the classes only partly, rounded so that many are tied."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    logits = 2.5 * (labels - 0.5) + torch.randn(n, generator=generator)
    return torch.sigmoid(logits).round(decimals=2), labels


def brute_force(probs: torch.Tensor, labels: torch.Tensor) -> list[tuple[float, float]]:
    """(precision, recall) of "WithMask when p >= s" for every distinct score s, counted by hand."""
    points = []
    for score in probs.unique().tolist():
        predicted = probs >= score
        tp = (predicted & (labels == 1)).sum().item()
        fp = (predicted & (labels == 0)).sum().item()
        points.append((tp / (tp + fp), tp / (labels == 1).sum().item()))
    return points


TARGETS = [
    ("precision", 0.8),
    ("precision", 0.9),
    ("precision", 0.95),
    ("recall", 0.8),
    ("recall", 0.9),
    ("recall", 0.99),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("metric", "target"), TARGETS)
def test_a_target_keeps_the_other_metric_highest(seed: int, metric: str, target: float) -> None:
    probs, labels = overlapping_scores(seed)
    other = {"precision": "recall", "recall": "precision"}[metric]
    points = [{"precision": p, "recall": r} for p, r in brute_force(probs, labels)]
    feasible = [point for point in points if point[metric] >= target]
    best_other = max(point[other] for point in feasible)
    best_same = max(point[metric] for point in feasible if point[other] == best_other)

    scores = operating_point(probs, labels, threshold_for(probs, labels, metric, target))
    assert scores[metric] >= target
    assert scores[other] == pytest.approx(best_other)
    assert scores[metric] == pytest.approx(
        best_same
    )  # ties: the targeted metric higher (fewer errors of its kind)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_keeps_the_lower_of_precision_and_recall_highest(seed: int) -> None:
    probs, labels = overlapping_scores(seed)
    points = brute_force(probs, labels)
    best_lower = max(min(point) for point in points)
    best_precision = max(p for p, r in points if min(p, r) == best_lower)

    scores = operating_point(probs, labels, threshold_for(probs, labels, "balanced", None))
    assert min(scores["precision"], scores["recall"]) == pytest.approx(best_lower)
    assert scores["precision"] == pytest.approx(best_precision), "ties: fewer false masks"


def test_threshold_by_hand() -> None:
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.6, 0.9])
    labels = torch.tensor([0, 0, 1, 0, 1, 1])
    # Precision 1 needs p >= 0.6 (recall 2/3); recall 1 needs p >= 0.3, where precision 3/4 is highest.
    assert threshold_for(probs, labels, "precision", 1.0) == pytest.approx(0.5)
    assert threshold_for(probs, labels, "recall", 1.0) == pytest.approx(0.25)
    # Balanced: p >= 0.3 gives precision 3/4 and recall 1, p >= 0.6 precision 1 and recall 2/3.
    assert threshold_for(probs, labels, "balanced", None) == pytest.approx(0.25)


def test_threshold_is_halfway_between_scores_so_both_rules_agree() -> None:
    probs, labels = overlapping_scores(3)
    threshold = threshold_for(probs, labels, "precision", 0.9)
    assert not (probs == threshold).any()
    assert torch.equal(probs > threshold, probs >= threshold)


def test_unreachable_target_gives_the_closest_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # The best-scored face is a false positive, so no threshold reaches precision 0.99.
    probs = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([0, 1, 0, 1])
    with caplog.at_level(logging.WARNING, logger="facemask.evaluation.calibration"):
        threshold = threshold_for(probs, labels, "precision", 0.99)
    # Precision 1/2 is the best reachable, at p >= 0.8 (recall 1/2) and at p >= 0.6 (recall 1).
    assert threshold == pytest.approx(0.3)
    assert operating_point(probs, labels, threshold) == pytest.approx(
        {"acc": 0.5, "precision": 0.5, "recall": 1.0, "f1": 2 / 3, "fpr": 1.0}
    )
    assert "precision >= 0.99" in caplog.text


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="f1"):
        threshold_for(torch.tensor([0.2, 0.8]), torch.tensor([0, 1]), "f1", 0.9)


def test_operating_point_by_hand() -> None:
    probs = torch.tensor([0.2, 0.3, 0.6, 0.7, 0.9])
    labels = torch.tensor([0, 1, 0, 1, 1])
    # p > 0.5: TP 2, FP 1, TN 1, FN 1.
    assert operating_point(probs, labels, 0.5) == pytest.approx(
        {"acc": 3 / 5, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "fpr": 1 / 2}
    )
    # A score equal to the threshold is not above it: 0.6 becomes WithoutMask.
    assert operating_point(probs, labels, 0.6) == pytest.approx(
        {"acc": 4 / 5, "precision": 1.0, "recall": 2 / 3, "f1": 0.8, "fpr": 0.0}
    )


def test_ece_is_zero_when_calibrated() -> None:
    # In each bin the fraction of WithMask equals the predicted probability.
    probs = torch.tensor([0.1, 0.3, 0.7, 0.9]).repeat_interleave(10)
    labels = torch.cat([(torch.arange(10) < k).long() for k in (1, 3, 7, 9)])
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0, abs=1e-6)


def test_ece_is_large_when_confidently_wrong() -> None:
    probs = torch.tensor([0.99, 0.01]).repeat(20)
    labels = torch.tensor([0, 1]).repeat(20)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.99)


def test_ece_by_hand() -> None:
    # Bin of 0.25: observed 1/2, gap 0.25; bin of 0.75: observed 1, gap 0.25; each holds half the faces.
    probs = torch.tensor([0.25, 0.25, 0.75, 0.75])
    labels = torch.tensor([0, 1, 1, 1])
    assert expected_calibration_error(probs, labels, n_bins=4) == pytest.approx(0.25)


def test_reliability_bins_give_the_ece() -> None:
    probs, labels = overlapping_scores(4)
    confidence, fraction, counts = reliability_bins(probs, labels, n_bins=15)
    assert counts.sum() == len(probs)
    ece = ((fraction - confidence).abs() * counts).sum() / counts.sum()
    assert ece.item() == pytest.approx(expected_calibration_error(probs, labels, n_bins=15), abs=1e-6)


def test_pr_figure() -> None:
    probs, labels = overlapping_scores(0)
    precision, recall, _ = binary_precision_recall_curve(probs, labels)
    figure = pr_figure(precision, recall, threshold_point=(0.95, 0.6))
    ax = figure.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("recall (WithMask)", "precision (WithMask)")
    point = ax.lines[-1]
    assert (point.get_xdata()[0], point.get_ydata()[0]) == (0.6, 0.95)
    assert len(pr_figure(precision, recall).axes[0].lines) == 1
    plt.close("all")


def test_reliability_figure() -> None:
    probs, labels = overlapping_scores(0)
    figure = reliability_figure(probs, labels, n_bins=10)
    diagram, histogram = figure.axes
    ece = expected_calibration_error(probs, labels, n_bins=10)
    assert diagram.get_title() == f"ECE {ece:.4f}"
    filled = (reliability_bins(probs, labels, 10)[2] > 0).sum().item()
    assert len(diagram.patches) == filled
    assert len(histogram.patches) == 10
    assert histogram.get_xlabel() == "P(WithMask)"
    plt.close(figure)
