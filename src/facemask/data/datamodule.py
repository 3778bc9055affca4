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
from facemask.data.photos import at_spec, photo_paths
from facemask.data.root import find_root, find_split, missing
from facemask.data.sets import fetch_hint
from facemask.data.sources import (
    FRAMINGS,
    PhotoSpec,
    RealFaces,
    Synthesis,
    TrainPhotos,
    photo_folder,
    spec_images,
)
from facemask.data.splits import stratified_fold, stratified_split
from facemask.errors import FacemaskError
from facemask.vision.crops import DEFAULT_MARGIN, check_margin
from facemask.vision.spec import DEFAULT_SPEC, InputSpec

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
    stratified k-fold (cross-validation). Test is the ``test`` set; ``extra_test_sets`` (name -> ImageFolder
    root of 28x28 images) and ``detected_test_sets`` (name -> ImageFolder root of full-size photos, cut by the
    face detector as ``facemask detect`` cuts them) are tested beside it under their own metric prefix. A set
    whose folder does not exist is skipped with a warning, so that the default config works where ../shared is
    absent. Training adds the sources of ``data/sources.py``: the split's own photos re-framed and drawn on
    (``TrainPhotos``), labelled real photos and face crops (``RealFaces``), and mined hard negatives (a crop
    folder of bare faces, ``hard_negatives``); a real source with ``per_epoch`` gives that many images an
    epoch (``data/draws.py``). ``val_sets`` (photos or crops) are validated beside the split and pooled with it,
    each weighted by ``val_weights`` (default: every set the same total weight). ``mask_rate_sets`` are faces
    whose share called a mask at the operating threshold is reported (``NAME/mask_rate``).
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
        framing: str = "dataset",
        photos: str | None = None,
        cache_dir: str | None = None,
        test_groups: Mapping[str, Sequence[str]] | None = None,
        detected_test_sets: Mapping[str, PhotoSpec | None] | None = None,
        real_photos: Mapping[str, PhotoSpec | None] | None = None,
        val_sets: Mapping[str, PhotoSpec | None] | None = None,
        val_pool: Sequence[str] | None = None,
        real_repeat: int = 1,
        real_margins: Sequence[float] | None = None,
        margin: float = DEFAULT_MARGIN,
        real_crops: Mapping[str, PhotoSpec | None] | None = None,
        val_weights: Mapping[str, float] | str | None = None,
        hard_negatives: str | None = None,
        hard_negatives_repeat: int = 1,
        mask_rate_sets: Mapping[str, PhotoSpec | None] | None = None,
        balance: bool = False,
        size: int = 28,
        channels: int = 1,
        test_photos: str | None = None,
    ) -> None:
        super().__init__()
        if augment is not None and not callable(augment):
            raise FacemaskError(
                f"data.augment={augment!r} is not a transform: pick a preset with data/augment=NAME"
            )
        self.save_hyperparameters(logger=False, ignore=["augment"])
        for key, value in self.hparams.items():  # plain types: checkpoints load with weights_only
            if isinstance(value, DictConfig | ListConfig):
                self.hparams[key] = OmegaConf.to_container(value)
        hp = self.hparams
        unknown = set(hp.val_pool or ()) - {"val_dataset", *(hp.val_sets or {})}
        if unknown:
            raise FacemaskError(
                f"data.val_pool names {', '.join(sorted(unknown))}: expected val_dataset or a name in data.val_sets"
            )
        check_val_weights(hp.val_weights, hp.val_sets or {})
        for what, repeat in (("real_repeat", real_repeat), ("hard_negatives_repeat", hard_negatives_repeat)):
            if not (isinstance(repeat, int) and repeat >= 1):
                raise FacemaskError(f"data.{what}={repeat}: expected a whole number >= 1")
        both = set(hp.real_photos or {}) & set(hp.real_crops or {})
        if both:
            raise FacemaskError(f"data.real_photos and data.real_crops both name {', '.join(sorted(both))}")
        check_margin(margin, "data.margin")
        for real_margin in hp.real_margins or ():
            check_margin(real_margin, f"data.real_margins={hp.real_margins}")
        if framing not in FRAMINGS:
            raise FacemaskError(f"data.framing={framing!r}: expected one of {', '.join(FRAMINGS)}")
        self.augment = augment
        self.spec = InputSpec(size, channels)
        synthetic = hp.synthetic or {}
        options = {key: value for key, value in synthetic.items() if key != "real_faces"}
        synthesis = Synthesis(options, cache_dir, photos, self.spec) if synthetic else None
        self.train_photos = TrainPhotos(
            photos, framing, margin, synthesis, cache_dir, skip_bad_files, balance, self.spec
        )
        real = {**(hp.real_photos or {}), **(hp.real_crops or {})}
        if hard_negatives:  # mined bare faces (facemask mine): a crop folder of one class, repeated
            real["hard_negatives"] = {
                "crops": hard_negatives,
                "label": "WithoutMask",
                "repeat": hard_negatives_repeat,
            }
        self.real_faces = RealFaces(
            real,
            hp.real_margins or [margin],
            real_repeat,
            synthesis if synthetic.get("real_faces") else None,
            cache_dir,
            skip_bad_files,
            self.spec,
        )
        self.sets: dict[str, ImageSet] = {}
        self.roots: dict[str, Path] = {}  # the folder of each test set (for its labels.csv, if any)
        self.train_sizes: dict[str, int] = {}  # images of each training source, in the order of ``train``
        self.mask_rate_sets: dict[str, ImageSet] = {}

    @property
    def test_set_names(self) -> list[str]:
        """Metric prefixes of the test dataloaders, in order."""
        return [name for name in self.sets if name not in ("train", "val", *self.val_set_names)]

    @property
    def val_set_names(self) -> list[str]:
        """Metric prefixes of the validation dataloaders: ``val`` is what every choice is made on (the pool
        of ``val_pool``); with extra validation sets, each is also scored alone (``val_dataset``: the split)."""
        extra = [name for name in self.sets if name in (self.hparams.val_sets or {})]
        return ["val", "val_dataset", *extra] if extra else ["val"]

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        root = find_root(self.hparams.root)
        info_once("dataset: %s", root)
        skip = self.hparams.skip_bad_files
        full_train = load_image_folder(find_split(root, "Train"), skip)  # the split is made on the dataset
        if self.hparams.folds:
            split = stratified_fold(
                full_train.labels, self.hparams.folds, self.hparams.fold, self.hparams.split_seed
            )
        else:
            split = stratified_split(full_train.labels, self.hparams.val_fraction, self.hparams.split_seed)
        train_idx, val_idx = split
        self.roots["test"] = find_split(root, "Test")
        sources = {
            "dataset": self.train_photos.build(full_train.subset(train_idx)),
            **self.real_faces.build(),
        }
        self.train_sizes = {name: len(images) for name, images in sources.items()}
        self.sets = {
            "train": ImageSet.concat(list(sources.values())),
            "val": self._at_spec(full_train, self.hparams.photos).subset(val_idx),
            "test": self._at_spec(load_image_folder(self.roots["test"], skip), self.hparams.test_photos),
        }
        for name, path in (self.hparams.extra_test_sets or {}).items():
            if self._exists(name, path):
                self.roots[name] = Path(path)
                self.sets[name] = self._test_set(Path(path))
        for name, spec in {
            **(self.hparams.detected_test_sets or {}),
            **(self.hparams.val_sets or {}),
        }.items():
            if self._exists(name, photo_folder(spec)):
                self.roots[name] = photo_folder(spec)
                self.sets[name] = self._deployment_framed(spec)
        for name, spec in (self.hparams.mask_rate_sets or {}).items():
            if self._exists(name, photo_folder(spec)):
                self.mask_rate_sets[name] = self._deployment_framed(spec)
        self._pool_validation()
        info_once("images: %s", ", ".join(f"{name} {len(s)}" for name, s in self.sets.items()))

    def _deployment_framed(self, spec: PhotoSpec) -> ImageSet:
        """A set's faces cut with the deployment margin, as ``facemask detect`` cuts them."""
        cache_dir, skip = self.hparams.cache_dir, self.hparams.skip_bad_files
        return spec_images(spec, [self.hparams.margin], cache_dir, skip, self.spec)[0]

    def _at_spec(self, images: ImageSet, photos: str | Path | None) -> ImageSet:
        """The dataset's images at the input spec: as they are at 28 / 1, else re-made from ``photos``, their
        full-size originals (same class folders and stems: data.photos, data.test_photos)."""
        if self.spec == DEFAULT_SPEC:
            return images
        if photos is None or not Path(photos).is_dir():
            raise missing(
                photos or "data.photos", "the dataset's full-size photos, to make it at the input spec"
            )
        return at_spec(images, photo_paths(photos, images), self.spec, self.hparams.cache_dir)

    def _test_set(self, folder: Path) -> ImageSet:
        """An extra test set at the input spec: re-made from its originals where the data root has them (a
        ``mask28/`` beside its ``photos/``, as realworld), else its own files converted at the spec."""
        skip = self.hparams.skip_bad_files
        originals = folder.parent / "photos"
        if self.spec == DEFAULT_SPEC or folder.name != "mask28" or not originals.is_dir():
            return load_image_folder(folder, skip, self.spec)
        return self._at_spec(load_image_folder(folder, skip), originals)

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
        draws = [self._per_epoch(name) for name in self.train_sizes]
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

    def _per_epoch(self, name: str) -> int | None:
        """Images drawn from a training source each epoch (None: all of them)."""
        spec = self.real_faces.specs.get(name)
        return spec.get("per_epoch") if isinstance(spec, Mapping) else None

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
