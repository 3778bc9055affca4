"""Matplotlib figures for TensorBoard and the run folder: confusion matrix, ROC, training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure


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
