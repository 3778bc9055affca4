"""Matplotlib figures for TensorBoard and the run folder: confusion matrix, ROC, PR, reliability, curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from facemask.evaluation.calibration import expected_calibration_error, reliability_bins


def picture(image: torch.Tensor) -> np.ndarray:
    """A (channels, H, W) face in [0, 1] as imshow takes it: (H, W) gray (with cmap="gray") or (H, W, 3) RGB."""
    return (image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)).numpy()


def confusion_matrix_figure(matrix: torch.Tensor, classes: Sequence[str]) -> Figure:
    """Counts with true class on rows, predicted on columns, as torchmetrics lays them out."""
    figure, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(matrix.numpy(), cmap="Blues")
    for (row, col), count in zip(
        torch.cartesian_prod(torch.arange(2), torch.arange(2)).tolist(),
        matrix.flatten().tolist(),
        strict=True,
    ):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(col, row, int(count), ha="center", va="center", color=color, fontsize=12)
    ax.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted",
        ylabel="true",
    )
    figure.tight_layout()
    return figure


def roc_figure(fpr: torch.Tensor, tpr: torch.Tensor, thresholds: torch.Tensor | None = None) -> Figure:
    """ROC of WithMask against WithoutMask, with the chance diagonal for scale."""
    figure, ax = plt.subplots(figsize=(3.6, 3.2))
    area = torch.trapezoid(tpr, fpr).item()
    ax.plot(fpr.numpy(), tpr.numpy(), label=f"AUROC {area:.4f}")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (recall)", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    figure.tight_layout()
    return figure


def curves_figure(
    scalars: Mapping[str, Sequence[tuple[int, float]]], names: Sequence[str] = ("loss", "acc")
) -> Figure:
    """One panel per metric name, train and val curves against the global step."""
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for stage in ("train", "val"):
            points = scalars.get(f"{stage}/{name}", [])
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker=".", label=stage)
        ax.set(title=name, xlabel="step")
        ax.legend()
    figure.tight_layout()
    return figure


def pr_figure(
    precision: torch.Tensor, recall: torch.Tensor, threshold_point: tuple[float, float] | None = None
) -> Figure:
    """Precision-recall curve of WithMask, with the chosen operating point as ``(precision, recall)``."""
    figure, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.plot(recall.numpy(), precision.numpy(), label="PR curve")
    if threshold_point is not None:
        point_precision, point_recall = threshold_point
        label = f"operating point\nP {point_precision:.3f}, R {point_recall:.3f}"
        ax.plot([point_recall], [point_precision], "o", color="crimson", label=label)
    ax.set(xlabel="recall (WithMask)", ylabel="precision (WithMask)", xlim=(0, 1.01), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    figure.tight_layout()
    return figure


def reliability_figure(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> Figure:
    """Observed fraction of WithMask per bin of P(WithMask) against the diagonal, and how the scores spread."""
    confidence, fraction, counts = (t.cpu().numpy() for t in reliability_bins(probs, labels, n_bins))
    filled = counts > 0
    centres = (torch.arange(n_bins) + 0.5).numpy() / n_bins
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(3.6, 4.4), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    top.bar(centres[filled], fraction[filled], width=1 / n_bins, edgecolor="black", label="observed")
    top.plot(confidence[filled], fraction[filled], ".", color="crimson", label="bin mean P")
    top.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ece = expected_calibration_error(probs, labels, n_bins)
    top.set(ylabel="fraction WithMask", ylim=(0, 1), title=f"ECE {ece:.4f}")
    top.legend(loc="upper left")
    bottom.bar(centres, counts, width=1 / n_bins, color="grey")
    bottom.set(xlabel="P(WithMask)", ylabel="count", xlim=(0, 1), yscale="symlog")
    figure.tight_layout()
    return figure
