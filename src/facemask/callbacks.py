"""Lightning callbacks of this project (the rest come from Lightning, configured in src/facemask/conf/callbacks/)."""

from __future__ import annotations

import logging
import random
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics import MetricCollection
from torchvision.utils import save_image

from facemask.data.folder import CLASSES
from facemask.data.transforms import augmentation_sheet
from facemask.evaluation.figures import confusion_matrix_figure, roc_figure

log = logging.getLogger(__name__)


def figures_dir(trainer: L.Trainer) -> Path:
    """``<run>/figures``, made on first use."""
    folder = Path(trainer.default_root_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class AugmentationSheet(L.Callback):
    """Saves what the augmentation does to a few training faces, so a preset can be judged by eye.

    Written once at the start of fit to ``<run>/figures/augmentation.png`` and to TensorBoard.
    """

    def __init__(self, n_images: int = 8, n_variants: int = 8) -> None:
        self.n_images, self.n_variants = n_images, n_variants

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if getattr(datamodule, "augment", None) is None or not trainer.is_global_zero:
            return
        faces = datamodule.sets["train"].balanced(self.n_images).floats()
        with torch.random.fork_rng(devices=[]):  # leaves the training RNG untouched
            sheet = augmentation_sheet(datamodule.augment, faces, self.n_variants)
        save_image(sheet, figures_dir(trainer) / "augmentation.png")
        if isinstance(trainer.logger, TensorBoardLogger):
            trainer.logger.experiment.add_image("train/augmentation", sheet, 0)


class CurveFigures(L.Callback):
    """Confusion matrix and ROC of every validation and test set (the module's curve metrics) to TensorBoard
    each epoch; the test sets' also as ``<run>/figures/{set}_{kind}.png``."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._draw(trainer, pl_module, pl_module.val_curves, save=False)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw(trainer, pl_module, pl_module.test_curves, save=True)

    @staticmethod
    def _draw(
        trainer: L.Trainer, pl_module: L.LightningModule, curves: dict[str, MetricCollection], save: bool
    ) -> None:
        if not isinstance(trainer.logger, TensorBoardLogger):
            return
        for name, metrics in curves.items():
            values = metrics.compute()  # on every process: the curves are gathered under DDP
            if not trainer.is_global_zero:
                continue
            figures = {
                "confusion_matrix": confusion_matrix_figure(values["confmat"].cpu(), CLASSES),
                "roc": roc_figure(*(v.cpu() for v in values["roc"])),
            }
            for kind, figure in figures.items():
                if save:
                    figure.savefig(figures_dir(trainer) / f"{name}_{kind}.png", dpi=100, bbox_inches="tight")
                trainer.logger.experiment.add_figure(
                    f"{name}/{kind}", figure, pl_module.global_step, close=True
                )


class RngState(L.Callback):
    """Random states in every checkpoint: a run resumed from last.ckpt draws the same shuffles and
    augmentations as an uninterrupted one, so it ends with the same metrics. Stored as tensors and plain
    tuples, which load with ``weights_only=True``."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, gauss = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        kind, keys, position, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
        random.setstate(state_dict["python"])


class GracefulStop(L.Callback):
    """Ctrl-C during fit stops training after the current step instead of abandoning the run, so that the
    best checkpoint is still tested and the run recorded (``train.py`` then exits 130); a second Ctrl-C
    aborts at once."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = signal.signal(signal.SIGINT, lambda signum, frame: self._stop(trainer))

    def _stop(self, trainer: L.Trainer) -> None:
        if self.interrupted:
            self._restore()
            raise KeyboardInterrupt
        self.interrupted, trainer.should_stop = True, True
        log.warning(
            "Ctrl-C: training stops after this step, then the best checkpoint is tested (again: abort)"
        )

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
