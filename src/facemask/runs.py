"""A run's folder: the configs every Hydra app composes, the check that the folder can be written, and the
records every app leaves there (metrics.json, markdown tables, TensorBoard scalars)."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from facemask.data.root import dataset_of, find_data_root
from facemask.errors import FacemaskError

#: The order scores are shown in, in logs and tables.
SCORE_ORDER = ("acc", "precision", "recall", "f1", "auroc", "loss")


#: The Hydra configs ship inside the package: every app composes them, from any folder, after any install.
CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")
# conf/paths: ${data_root:} and ${dataset:ROOT} resolve where the data is (facemask.data.root) for every app
OmegaConf.register_new_resolver("data_root", lambda: str(find_data_root()), replace=True)
OmegaConf.register_new_resolver("dataset", lambda root: str(dataset_of(root)), replace=True)


def check_writable(output_dir: Path) -> None:
    """Fail before training, not at the first checkpoint, when the run folder cannot be written."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise FacemaskError(f"{output_dir}: run folder is not writable ({err.strerror})") from err


def set_aside_failed(output_dir: Path) -> Path | None:
    """A run that failed before its first checkpoint is not a run: ``<task>/runs/NAME`` moves to
    ``<task>/failed/NAME`` (its log kept for the reason, its empty TensorBoard folder not), so that ``runs/``
    and TensorBoard list real runs only.
    Runs with a checkpoint stay to be resumed; folders chosen by hand (hydra.run.dir) and sweep jobs stay."""
    if output_dir.parent.name != "runs" or any(output_dir.glob("checkpoints/*.ckpt")):
        return None
    failed = output_dir.parent.parent / "failed" / output_dir.name
    failed.parent.mkdir(parents=True, exist_ok=True)
    output_dir.rename(failed)
    shutil.rmtree(
        failed / "tensorboard", ignore_errors=True
    )  # no epoch, no scalars: not a run in TensorBoard
    return failed


def write_metrics(output_dir: Path, metrics: Mapping[str, Any]) -> Path:
    """``metrics.json``: every figure of the run, keys sorted, for scripts and the sweep summary."""
    path = output_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def write_table(output_dir: Path, name: str, markdown: str, writer: SummaryWriter | None = None) -> Path:
    """``name.md`` in the run folder, and the same table as TensorBoard text under ``name/summary``."""
    path = output_dir / f"{name}.md"
    path.write_text(markdown)
    if writer is not None:
        writer.add_text(f"{name}/summary", markdown)
    return path


def add_scalars(writer: SummaryWriter, metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Every finite number of ``metrics`` as a TensorBoard scalar."""
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            writer.add_scalar(key, value, step)
