"""``python -m facemask.crossval model=NAME folds=5``: stratified k-fold cross-validation on Train.

Each fold is a full ``train`` run in ``<run>/fold_<k>/`` whose validation split is the held-out fold; the
held-out scores of the best checkpoint give mean ± std per metric (crossval.csv/.md, TensorBoard).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, open_dict
from torch.utils.tensorboard import SummaryWriter

from facemask.errors import FacemaskError, exit_on_user_error
from facemask.evaluation.tables import aggregate, markdown_table, write_csv
from facemask.runs import CONFIG_DIR, SCORE_ORDER, add_scalars, write_table
from facemask.train import train

log = logging.getLogger(__name__)
SCORES = [name for name in SCORE_ORDER if name != "loss"]


def crossval(cfg: DictConfig) -> list[dict[str, Any]]:
    """Train every fold; returns one row per fold and a last ``mean ± std`` row."""
    if cfg.folds < 2:
        raise FacemaskError(f"folds={cfg.folds}: cross-validation needs at least 2 folds")
    output_dir = Path(cfg.paths.output_dir)
    rows = []
    for fold in range(cfg.folds):
        log.info("fold %d of %d", fold + 1, cfg.folds)
        metrics = train(fold_config(cfg, fold, output_dir / f"fold_{fold}"))
        rows.append(
            {
                "fold": fold,
                **{f"crossval/{s}": metrics[f"val/{s}"] for s in SCORES},
                "test/acc": metrics.get("test/acc"),
            }
        )
    summary = aggregate([{**row, "fold": "mean ± std"} for row in rows], "fold", [*rows[0]][1:])
    record(output_dir, rows, summary[0])
    return [*rows, *summary]


def fold_config(cfg: DictConfig, fold: int, output_dir: Path) -> DictConfig:
    """The train config of one fold: the k-fold split, its own run folder."""
    fold_cfg = cfg.copy()
    with open_dict(fold_cfg):
        fold_cfg.data.folds = cfg.folds
        fold_cfg.data.fold = fold
        fold_cfg.paths.output_dir = str(output_dir)
    return fold_cfg


def record(output_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """crossval.csv (folds + means), crossval.md, and the scores per fold in TensorBoard."""
    columns = ["fold", *(f"crossval/{s}" for s in SCORES), "test/acc"]
    write_csv(output_dir / "crossval.csv", [*rows, summary])
    markdown = markdown_table([*rows, summary], columns)
    with SummaryWriter(output_dir / "tensorboard") as writer:
        for row in rows:
            add_scalars(writer, {name: row[name] for name in columns[1:]}, row["fold"])
        write_table(output_dir, "crossval", markdown, writer)
    log.info("cross-validation (%s):\n%s", output_dir / "crossval.csv", markdown)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="crossval.yaml")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the mean of ``optimized_metric`` over the folds."""
    with exit_on_user_error():
        rows = crossval(cfg)
    return rows[-1].get(f"{cfg.optimized_metric} mean")


if __name__ == "__main__":
    main()
