"""``python -m facemask.evaluate ckpt_path=PATH``: everything worth knowing about one checkpoint.

Per split (val, test, extra test sets): scores at the checkpoint's operating threshold and at 0.5, AUROC,
ECE; ROC, precision-recall, reliability and confusion-matrix figures. On Test: the robustness report and a
Grad-CAM sheet. All in the run folder (metrics.json, evaluation.md, figures/, robustness/) and TensorBoard.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig
from torch.utils.tensorboard import SummaryWriter
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_confusion_matrix,
    binary_precision_recall_curve,
    binary_roc,
)

from facemask.data.folder import CLASSES, ImageSet
from facemask.errors import exit_on_user_error
from facemask.evaluation.batches import predict_in_batches
from facemask.evaluation.calibration import expected_calibration_error, operating_point
from facemask.evaluation.figures import confusion_matrix_figure, pr_figure, reliability_figure, roc_figure
from facemask.evaluation.gradcam import default_layer, grad_cam, gradcam_figure
from facemask.evaluation.groups import group_accuracy
from facemask.evaluation.hard_negatives import hard_negative_report
from facemask.evaluation.robustness import robustness_report
from facemask.evaluation.tables import markdown_table
from facemask.module import MaskClassifier, load_checkpoint
from facemask.runs import CONFIG_DIR, add_scalars, check_writable, write_metrics, write_table

log = logging.getLogger(__name__)


def split_scores(name: str, probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, float]:
    """Scores at the operating threshold (``name/acc``...) and at 0.5 (``name/acc@0.5``...), AUROC, ECE."""
    at_op = operating_point(probs, labels, threshold)
    at_half = operating_point(probs, labels, 0.5)
    return {
        **{f"{name}/{key}": value for key, value in at_op.items()},
        **{f"{name}/{key}@0.5": value for key, value in at_half.items()},
        f"{name}/auroc": binary_auroc(probs, labels).item(),
        f"{name}/ece": expected_calibration_error(probs, labels),
    }


def split_figures(probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, Figure]:
    """ROC, precision-recall (with the operating point), reliability diagram, confusion matrix."""
    point = operating_point(probs, labels, threshold)
    precision, recall, _ = binary_precision_recall_curve(probs, labels)
    matrix = binary_confusion_matrix(probs, labels, threshold=threshold)
    return {
        "roc": roc_figure(*binary_roc(probs, labels)),
        "pr": pr_figure(precision, recall, (point["precision"], point["recall"])),
        "reliability": reliability_figure(probs, labels),
        "confusion_matrix": confusion_matrix_figure(matrix, CLASSES),
    }


def gradcam_sheet(model: MaskClassifier, images: ImageSet, count: int, threshold: float) -> Figure:
    """Grad-CAM over the first ``count`` / 2 faces of each class."""
    picked = images.balanced(count)
    faces = picked.floats()
    cams = grad_cam(model, faces, default_layer(model.net))
    return gradcam_figure(faces, cams, picked.labels, model.predict_proba(faces), threshold)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run every evaluation of ``cfg.ckpt_path``; returns metrics.json's content."""
    L.seed_everything(cfg.seed, verbose=False)
    output_dir = Path(cfg.paths.output_dir)
    check_writable(output_dir)
    model = load_checkpoint(cfg.ckpt_path)
    # the faces at the size and colour the model reads, whatever data.size / data.channels say
    datamodule = instantiate(cfg.data, augment=None, **model.spec.record())
    datamodule.setup("test")
    threshold = float(model.threshold)
    log.info("operating threshold %.4f (%s)", threshold, model.hparams.get("operating_point") or "default")

    figures_dir = output_dir / "figures"
    figures_dir.mkdir(exist_ok=True)
    metrics: dict[str, Any] = {"ckpt_path": str(cfg.ckpt_path), "threshold": threshold}
    with SummaryWriter(output_dir / "tensorboard") as writer:
        for name in [*datamodule.val_set_names, *datamodule.test_set_names]:
            images = datamodule.sets[name]
            probs = predict_in_batches(model.predict_proba, images.floats())
            metrics.update(split_scores(name, probs, images.labels, threshold))
            if name in datamodule.roots:
                pools = datamodule.hparams.test_groups
                metrics.update(group_accuracy(name, images, datamodule.roots[name], probs, threshold, pools))
            for kind, figure in split_figures(probs, images.labels, threshold).items():
                figure.savefig(figures_dir / f"{name}_{kind}.png", dpi=100, bbox_inches="tight")
                writer.add_figure(f"{name}/{kind}", figure, close=True)
        sheet = gradcam_sheet(model, datamodule.sets["test"], cfg.gradcam_images, threshold)
        sheet.savefig(figures_dir / "gradcam.png", dpi=100, bbox_inches="tight")
        writer.add_figure("test/gradcam", sheet, close=True)
        add_scalars(writer, metrics)
    if cfg.robustness:
        test = datamodule.sets["test"]
        robustness_report(
            model.predict_proba, test.floats(), test.labels, output_dir / "robustness", threshold
        )
        for row in hard_negative_report(
            model.predict_proba, test.floats(), test.labels, output_dir / "robustness", threshold
        ):
            if row["severity"] == 3:
                metrics[f"test/false_mask_rate/{row['occluder']}"] = row["false_mask_rate"]
    record(output_dir, metrics, [*datamodule.val_set_names, *datamodule.test_set_names])
    return metrics


def record(output_dir: Path, metrics: dict[str, Any], splits: list[str]) -> None:
    """metrics.json and evaluation.md: one row per split, at the operating threshold and at 0.5."""
    write_metrics(output_dir, metrics)
    columns = [
        "acc",
        "precision",
        "recall",
        "f1",
        "fpr",
        "auroc",
        "ece",
        "acc@0.5",
        "precision@0.5",
        "recall@0.5",
    ]
    rows = [{"split": split, **{c: metrics[f"{split}/{c}"] for c in columns}} for split in splits]
    table = markdown_table(rows, ["split", *columns])
    write_table(output_dir, "evaluation", f"Threshold {metrics['threshold']:.4f}\n\n{table}")
    log.info("evaluation of %s at threshold %.4f:\n%s", metrics["ckpt_path"], metrics["threshold"], table)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        evaluate(cfg)


if __name__ == "__main__":
    main()
