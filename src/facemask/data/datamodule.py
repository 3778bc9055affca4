"""MaskDataModule: Train split into stratified train/val, Test (and named extra test sets) in memory."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from facemask.data.folder import POSITIVE_CLASS, DatasetError, ImageSet, load_image_folder
from facemask.data.synthesize import synthesize
from facemask.errors import FacemaskError

log = logging.getLogger(__name__)
info_once = rank_zero_only(log.info)  # under DDP every process loads the data; one says so

#: Where the dataset is looked for when neither ``data.root`` nor FACEMASK_DATA says (relative to cwd).
DEFAULT_ROOTS = (Path("data/mask28"), Path("../shared/data/mask28"))


def find_split(root: Path, name: str) -> Path:
    """``root/Train`` or ``root/train`` (likewise Test): both spellings exist in the wild."""
    for candidate in (root / name, root / name.lower()):
        if candidate.is_dir():
            return candidate
    raise DatasetError(f"{root}: split folder {name}/ (or {name.lower()}/) is missing")


def resolve_root(root: str | Path | None) -> Path:
    """The dataset folder: ``root`` if given, else FACEMASK_DATA, else the first default that exists."""
    if root is None and os.environ.get("FACEMASK_DATA"):
        root = os.environ["FACEMASK_DATA"]
    candidates = [Path(root)] if root is not None else list(DEFAULT_ROOTS)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c.resolve()) for c in candidates)
    raise DatasetError(
        f"dataset not found (looked in: {looked}); point data.root=PATH or FACEMASK_DATA at a folder "
        "holding Train/ and Test/ (README, section Data)"
    )


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices with ``fraction`` of every class in val, the same for the same seed.

    Train comes back shuffled so that unshuffled slices of it (``overfit_batches``) hold both classes.
    """
    generator = torch.Generator().manual_seed(seed)
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    for members in _shuffled_classes(labels, generator):
        is_val[members[: round(len(members) * fraction)]] = True
    return _train_val(is_val, generator)


def stratified_fold(
    labels: torch.Tensor, folds: int, fold: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices of fold ``fold`` in a stratified k-fold: over all folds, each sample is in val once."""
    if not 0 <= fold < folds:
        raise FacemaskError(f"data.fold={fold} is not one of the {folds} folds (0..{folds - 1})")
    generator = torch.Generator().manual_seed(seed)
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    for members in _shuffled_classes(labels, generator):
        is_val[members[fold::folds]] = True  # each class dealt round-robin over the folds
    return _train_val(is_val, generator)


def _shuffled_classes(labels: torch.Tensor, generator: torch.Generator) -> Iterator[torch.Tensor]:
    for label in labels.unique(sorted=True):
        members = (labels == label).nonzero().flatten()
        yield members[torch.randperm(len(members), generator=generator)]


def _train_val(is_val: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    train_idx = (~is_val).nonzero().flatten()
    return train_idx[torch.randperm(len(train_idx), generator=generator)], is_val.nonzero().flatten()


class EvalShard(DistributedSampler):
    """Under DDP, each validation/test image on exactly one process: Lightning's default sampler pads
    the shards to equal length by repeating images, which would count them twice in the metrics."""

    def __init__(self, dataset: TensorDataset, trainer: L.Trainer) -> None:
        super().__init__(dataset, trainer.world_size, trainer.global_rank, shuffle=False)
        self.indices = list(range(trainer.global_rank, len(dataset), trainer.world_size))
        self.num_samples = len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


class MaskDataModule(LightningDataModule):
    """Decodes each split once into uint8 tensors; augmentation runs batched in ``on_after_batch_transfer``.

    The validation split is ``val_fraction`` of each class, or with ``folds`` set, fold ``fold`` of a
    stratified k-fold (cross-validation). Test is the ``test`` set; ``extra_test_sets`` (name -> ImageFolder
    root) are tested beside it under their own metric prefix. An extra set whose folder does not exist is skipped with a warning, so that the
    default config works where ../shared is absent.
    """

    def __init__(
        self,
        root: str | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        augment: nn.Module | None = None,
        skip_bad_files: bool = False,
        extra_test_sets: Mapping[str, str | None] | None = None,
        folds: int | None = None,
        fold: int = 0,
        synthetic: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if augment is not None and not callable(augment):
            raise FacemaskError(
                f"data.augment={augment!r} is not a transform: pick a preset with data/augment=NAME"
            )
        extra_test_sets = dict(extra_test_sets or {})  # plain types: checkpoints load with weights_only
        synthetic = OmegaConf.to_container(synthetic) if isinstance(synthetic, DictConfig) else synthetic
        self.save_hyperparameters(logger=False, ignore=["augment"])
        self.augment = augment
        self.sets: dict[str, ImageSet] = {}
        self.roots: dict[str, Path] = {}  # the folder of each test set (for its labels.csv, if any)

    @property
    def test_set_names(self) -> list[str]:
        """Metric prefixes of the test dataloaders, in order."""
        return [name for name in self.sets if name not in ("train", "val")]

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        root = resolve_root(self.hparams.root)
        info_once("dataset: %s", root)
        skip = self.hparams.skip_bad_files
        full_train = load_image_folder(find_split(root, "Train"), skip)
        if self.hparams.folds:
            split = stratified_fold(
                full_train.labels, self.hparams.folds, self.hparams.fold, self.hparams.split_seed
            )
        else:
            split = stratified_split(full_train.labels, self.hparams.val_fraction, self.hparams.split_seed)
        train_idx, val_idx = split
        self.roots["test"] = find_split(root, "Test")
        self.sets = {
            "train": self._with_synthetic(full_train.subset(train_idx)),
            "val": full_train.subset(val_idx),
            "test": load_image_folder(self.roots["test"], skip),
        }
        for name, path in (self.hparams.extra_test_sets or {}).items():
            if path is not None and Path(path).is_dir():
                self.roots[name] = Path(path)
                self.sets[name] = load_image_folder(path, skip)
            else:
                log.warning("extra test set %r skipped: folder %s not found", name, path)
        info_once("images: %s", ", ".join(f"{name} {len(s)}" for name, s in self.sets.items()))

    def _with_synthetic(self, train: ImageSet) -> ImageSet:
        """The training part plus masks drawn on its own unmasked faces' full-size photos (``synthetic``)."""
        options = self.hparams.synthetic
        if not options:
            return train
        unmasked = {
            path.stem for path, label in zip(train.paths, train.labels.tolist(), strict=True) if label == 0
        }
        images = torch.from_numpy(synthesize(stems=unmasked, **options)).unsqueeze(1)
        info_once("synthetic masked faces: %d", len(images))
        return ImageSet(
            torch.cat([train.images, images]),
            torch.cat([train.labels, torch.full((len(images),), POSITIVE_CLASS)]),
            train.paths + [Path(options["photos"]) / "synthetic" / f"{i}.png" for i in range(len(images))],
        )

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        images = self.sets[name]
        dataset = TensorDataset(images.images, images.labels)
        distributed = self.trainer is not None and self.trainer.world_size > 1
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            sampler=EvalShard(dataset, self.trainer) if distributed and not shuffle else None,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(name) for name in self.test_set_names]

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def on_after_batch_transfer(self, batch: list[torch.Tensor], dataloader_idx: int) -> list[torch.Tensor]:
        """uint8 -> float in [0, 1]; augment training batches on the device, the whole batch at once."""
        images, labels = batch
        images = images.float().div_(255)
        if self.augment is not None and self.trainer is not None and self.trainer.training:
            images = self.augment(images)
        return [images, labels]
