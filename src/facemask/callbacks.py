"""Lightning callbacks of this project (the rest come from Lightning, configured in conf/callbacks/)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import save_image

from facemask.data.transforms import augmentation_sheet


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
        folder = Path(trainer.default_root_dir) / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        save_image(sheet, folder / "augmentation.png")
        if isinstance(trainer.logger, TensorBoardLogger):
            trainer.logger.experiment.add_image("train/augmentation", sheet, 0)
