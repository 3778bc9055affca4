"""MaskDataModule: Train split into stratified train/val, Test (and named extra test sets) in memory."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from facemask.data.draws import SourceDraws
from facemask.data.folder import ImageSet, load_image_folder
from facemask.data.labelled import Context, EvalSet, remade
from facemask.data.root import find_root, find_split, missing
from facemask.data.sets import fetch_hint
from facemask.data.sources import DatasetFaces, TrainSource, check_count
from facemask.data.splits import stratified_fold, stratified_split
from facemask.errors import FacemaskError
from facemask.vision.crops import DEFAULT_MARGIN, check_margin
from facemask.vision.spec import InputSpec

log = logging.getLogger(__name__)
info_once = rank_zero_only(log.info)  # under DDP every process loads the data; one says so


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
    stratified k-fold (cross-validation). Training takes ``sources`` (name -> ``data/sources.py`` component;
    default: the split's training part, ``dataset``); a source with ``per_epoch`` gives that many images an
    epoch (``data/draws.py``). Besides the split and Test, named sets (``data/labelled.py`` components) are:
    ``val_sets``, validated beside the split and pooled with it (``val_pool``), each weighted by
    ``val_weights`` (default: every set the same total weight); ``test_sets``, tested beside Test under their
    own metric prefix; ``mask_rate_sets``, faces whose share called a mask at the operating threshold is
    reported (``NAME/mask_rate``). A named set whose folder does not exist is skipped with a warning, so that
    the default config works where ../shared is absent; a null entry is no set (how a config drops one).
    Every face is made at the input spec (``size``, ``channels``) and cut with ``margin``, both recorded in the
    model; ``real_margins`` and ``real_repeat`` are the real sources' defaults.
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
        folds: int | None = None,
        fold: int = 0,
        sources: Mapping[str, TrainSource | None] | None = None,
        val_sets: Mapping[str, EvalSet | None] | None = None,
        test_sets: Mapping[str, EvalSet | None] | None = None,
        mask_rate_sets: Mapping[str, EvalSet | None] | None = None,
        val_pool: Sequence[str] | None = None,
        val_weights: Mapping[str, float] | str | None = None,
        test_groups: Mapping[str, Sequence[str]] | None = None,
        real_margins: Sequence[float] | None = None,
        real_repeat: int = 1,
        margin: float = DEFAULT_MARGIN,
        size: int = 28,
        channels: int = 1,
        photos: str | None = None,
        test_photos: str | None = None,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        if augment is not None and not callable(augment):
            raise FacemaskError(
                f"data.augment={augment!r} is not a transform: pick a preset with data/augment=NAME"
            )
        # plain values only: checkpoints load with weights_only; the sources and sets are in the run's config
        self.save_hyperparameters(
            logger=False, ignore=["augment", "sources", "val_sets", "test_sets", "mask_rate_sets"]
        )
        for key, value in self.hparams.items():
            if isinstance(value, DictConfig | ListConfig):
                self.hparams[key] = OmegaConf.to_container(value)
        self.augment = augment
        self.sources = present(sources if sources is not None else {"dataset": DatasetFaces()})
        self.named = {
            "val": present(val_sets),
            "test": present(test_sets),
            "mask_rate": present(mask_rate_sets),
        }
        self.check()
        self.ctx = Context(
            InputSpec(size, channels), margin, cache_dir, skip_bad_files, real_margins, real_repeat, photos
        )
        self.sets: dict[str, ImageSet] = {}
        self.roots: dict[str, Path] = {}  # the folder of each test set (for its labels.csv, if any)
        self.train_sizes: dict[str, int] = {}  # images of each training source, in the order of ``train``
        self.mask_rate_sets: dict[str, ImageSet] = {}

    def check(self) -> None:
        """Every choice checked before any data is read, each error naming its config key."""
        hp, val_sets = self.hparams, self.named["val"]
        unknown = set(hp.val_pool or ()) - {"val_dataset", *val_sets}
        if unknown:
            raise FacemaskError(
                f"data.val_pool names {', '.join(sorted(unknown))}: expected val_dataset or a name in data.val_sets"
            )
        check_val_weights(hp.val_weights, val_sets)
        check_count(hp.real_repeat, "data.real_repeat")
        check_margin(hp.margin, "data.margin")
        for real_margin in hp.real_margins or ():
            check_margin(real_margin, f"data.real_margins={hp.real_margins}")
        for name, source in self.sources.items():
            source.check(f"data.sources.{name}")
        names = [name for sets in self.named.values() for name in sets]
        clashes = sorted(
            {name for name in names if names.count(name) > 1} | ({"train", "val", "test"} & {*names})
        )
        if clashes:
            raise FacemaskError(f"data: set name(s) {', '.join(clashes)} used twice (or reserved)")

    @property
    def spec(self) -> InputSpec:
        """The faces' size and channels, which the model records."""
        return self.ctx.spec

    @property
    def test_set_names(self) -> list[str]:
        """Metric prefixes of the test dataloaders, in order."""
        return [name for name in self.sets if name not in ("train", "val", *self.val_set_names)]

    @property
    def val_set_names(self) -> list[str]:
        """Metric prefixes of the validation dataloaders: ``val`` is what every choice is made on (the pool
        of ``val_pool``); with extra validation sets, each is also scored alone (``val_dataset``: the split)."""
        extra = [name for name in self.sets if name in self.named["val"]]
        return ["val", "val_dataset", *extra] if extra else ["val"]

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        root = find_root(self.hparams.root)
        info_once("dataset: %s", root)
        ctx = self.ctx
        # the split is made on the dataset's own Train
        full_train = load_image_folder(find_split(root, "Train"), ctx.skip_bad_files)
        if self.hparams.folds:
            split = stratified_fold(
                full_train.labels, self.hparams.folds, self.hparams.fold, self.hparams.split_seed
            )
        else:
            split = stratified_split(full_train.labels, self.hparams.val_fraction, self.hparams.split_seed)
        train_idx, val_idx = split
        train = self._train(full_train.subset(train_idx))
        self.roots["test"] = find_split(root, "Test")
        test = load_image_folder(self.roots["test"], ctx.skip_bad_files)
        self.sets = {
            "train": train,
            "val": remade(full_train, self.hparams.photos, ctx).subset(val_idx),
            "test": remade(test, self.hparams.test_photos, ctx),
        }
        for name, named in (*self.named["test"].items(), *self.named["val"].items()):
            if self._exists(name, named.folder):
                self.roots[name] = Path(named.folder)
                self.sets[name] = named.images(ctx)
        for name, named in self.named["mask_rate"].items():
            if self._exists(name, named.folder):
                self.mask_rate_sets[name] = named.images(ctx)
        self._pool_validation()
        info_once("images: %s", ", ".join(f"{name} {len(s)}" for name, s in self.sets.items()))

    def _train(self, split: ImageSet) -> ImageSet:
        """Every training source, in order; a real source's folder must exist (it is asked for)."""
        made = {}
        for name, source in self.sources.items():
            folder = getattr(source, "folder", None)
            if folder is not None and not Path(folder).is_dir():
                raise missing(folder, f"training faces (data.sources.{name})")
            images = made[name] = source.build(self.ctx, split)
            drawn = f", {source.per_epoch} drawn an epoch" if source.per_epoch else ""
            info_once(
                "training source %s: %d with a mask, %d without%s",
                name,
                int(images.labels.sum()),
                int((images.labels == 0).sum()),
                drawn,
            )
        self.train_sizes = {name: len(images) for name, images in made.items()}
        return ImageSet.concat(list(made.values()))

    @staticmethod
    def _exists(name: str, path: str | Path | None) -> bool:
        """Whether a named set's folder exists; a missing one is skipped with a warning, so that the default
        config works where ../shared is absent."""
        if path is None or not Path(path).is_dir():
            log.warning("data set %r skipped: folder %s not found%s", name, path, fetch_hint(path or ""))
            return False
        return True

    def _pool_validation(self) -> None:
        """With extra validation sets, ``val`` becomes the pool of ``val_pool`` (default: all of them and the
        split, ``val_dataset``), so that checkpoints, early stopping and the threshold fit real faces too."""
        extra = [name for name in self.val_set_names if name not in ("val", "val_dataset")]
        if not extra:
            return
        self.sets = {"val_dataset": self.sets.pop("val"), **self.sets}
        names = self.hparams.val_pool or ["val_dataset", *extra]
        repeats = pool_repeats({name: len(self.sets[name]) for name in names}, self.hparams.val_weights)
        info_once("validation pool: %s", ", ".join(f"{name} x{k}" for name, k in repeats.items()))
        self.sets["val"] = ImageSet.concat([self.sets[name] for name, k in repeats.items() for _ in range(k)])

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
        draws = [self.sources[name].per_epoch for name in self.train_sizes]
        if all(count is None for count in draws):
            return self._loader("train", shuffle=True)
        images = self.sets["train"]
        return DataLoader(
            TensorDataset(images.images, images.labels),
            batch_size=self.hparams.batch_size,
            sampler=SourceDraws(list(self.train_sizes.values()), draws),
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(name) for name in self.val_set_names]
        return loaders if len(loaders) > 1 else loaders[0]

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(name) for name in self.test_set_names]

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def on_after_batch_transfer(self, batch: list[torch.Tensor], dataloader_idx: int) -> list[torch.Tensor]:
        """uint8 -> float in [0, 1]; augment training batches on the device, the whole batch at once."""
        if isinstance(
            batch, torch.Tensor
        ):  # the model's example_input_array (already floats), for its summary
            return batch
        images, labels = batch
        images = images.float().div_(255)
        if self.augment is not None and self.trainer is not None and self.trainer.training:
            images = self.augment(images)
        return [images, labels]


def present(named: Mapping[str, Any] | None) -> dict[str, Any]:
    """A config's named components less the null ones (a config drops a source or set by setting it null)."""
    return {name: value for name, value in (named or {}).items() if value is not None}


def check_val_weights(weights: Mapping[str, float] | str | None, val_sets: Mapping[str, Any]) -> None:
    """``data.val_weights`` is null (every set alike), ``size`` (every image alike) or name -> weight > 0."""
    if weights is None or weights == "size":
        return
    if not isinstance(weights, Mapping):
        raise FacemaskError(f"data.val_weights={weights!r}: expected null, size, or a mapping name -> weight")
    unknown = set(weights) - {"val_dataset", *val_sets}
    if unknown:
        raise FacemaskError(
            f"data.val_weights names {', '.join(sorted(unknown))}: expected val_dataset or a name in data.val_sets"
        )
    if any(not (isinstance(w, int | float) and w > 0) for w in weights.values()):
        raise FacemaskError(f"data.val_weights={weights}: every weight must be a number > 0")


def pool_repeats(
    sizes: Mapping[str, int], weights: Mapping[str, float] | str | None = None
) -> dict[str, int]:
    """How many times each set enters the validation pool so that its share of the pool follows ``weights``
    (default: every set alike, whatever its size; ``size``: every image alike, the plain concatenation): the
    pool's loss, scores and threshold are then the weighted ones, and the 132 faces of the dataset's split
    count as much as 1,700 web crops."""
    if weights == "size":
        return dict.fromkeys(sizes, 1)
    weights = {name: (weights or {}).get(name, 1.0) for name in sizes}
    per_image = {name: weights[name] / sizes[name] for name in sizes}
    smallest = min(per_image.values())
    return {name: max(1, round(per_image[name] / smallest)) for name in sizes}
