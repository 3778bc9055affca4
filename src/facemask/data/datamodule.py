"""MaskDataModule: Train split into stratified train/val, Test (and named extra test sets) in memory."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from facemask.data.cache import cached
from facemask.data.folder import DatasetError, ImageSet, load_image_folder
from facemask.data.photos import framed_faces, labelled_faces, largest_faces, photo_paths
from facemask.data.root import find_root, find_split
from facemask.data.splits import stratified_fold, stratified_split
from facemask.data.synthesize import VERSION, synthesize
from facemask.errors import FacemaskError
from facemask.vision.crops import DEFAULT_MARGIN, FaceCropper, check_margin
from facemask.vision.faces import Face
from facemask.vision.images import open_image

log = logging.getLogger(__name__)
info_once = rank_zero_only(log.info)  # under DDP every process loads the data; one says so

#: How training images are framed: as the dataset's photos, as the face detector's box plus margin
#: (what ``facemask detect`` feeds the classifier), or both (every training image twice).
FRAMINGS = ("dataset", "detector", "both")

#: Labelled full-size photos: a folder of class folders, or ``{photos: DIR, boxes: CSV}`` for annotated faces.
PhotoSpec = str | Mapping[str, str | None]


def photo_folder(spec: PhotoSpec | None) -> Path | None:
    """The photo folder a spec names (None where the spec is)."""
    if spec is None:
        return None
    return Path(spec if isinstance(spec, str) else spec["photos"])


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
    absent. The training part can be re-framed and extended from its full-size photos (``_from_photos``).
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
    ) -> None:
        super().__init__()
        if augment is not None and not callable(augment):
            raise FacemaskError(
                f"data.augment={augment!r} is not a transform: pick a preset with data/augment=NAME"
            )
        extra_test_sets = dict(extra_test_sets or {})  # plain types: checkpoints load with weights_only
        detected_test_sets, real_photos, val_sets, synthetic, test_groups, val_pool, real_margins = (
            OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
            for value in (
                detected_test_sets,
                real_photos,
                val_sets,
                synthetic,
                test_groups,
                val_pool,
                real_margins,
            )
        )
        unknown = set(val_pool or ()) - {"val_dataset", *(val_sets or {})}
        if unknown:
            raise FacemaskError(
                f"data.val_pool names {', '.join(sorted(unknown))}: expected val_dataset or a name in data.val_sets"
            )
        if real_repeat < 1:
            raise FacemaskError(f"data.real_repeat={real_repeat}: expected a whole number >= 1")
        check_margin(margin, "data.margin")
        for real_margin in real_margins or ():
            check_margin(real_margin, f"data.real_margins={real_margins}")
        if framing not in FRAMINGS:
            raise FacemaskError(f"data.framing={framing!r}: expected one of {', '.join(FRAMINGS)}")
        self.save_hyperparameters(logger=False, ignore=["augment"])
        self.augment = augment
        self.sets: dict[str, ImageSet] = {}
        self.roots: dict[str, Path] = {}  # the folder of each test set (for its labels.csv, if any)

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
            "train": ImageSet.concat(
                [self._from_photos(full_train.subset(train_idx)), *self._real_training()]
            ),
            "val": full_train.subset(val_idx),
            "test": load_image_folder(self.roots["test"], skip),
        }
        for name, path in (self.hparams.extra_test_sets or {}).items():
            if self._exists(name, path):
                self.roots[name] = Path(path)
                self.sets[name] = load_image_folder(path, skip)
        for name, spec in {
            **(self.hparams.detected_test_sets or {}),
            **(self.hparams.val_sets or {}),
        }.items():
            if self._exists(name, photo_folder(spec)):
                self.roots[name] = photo_folder(spec)
                self.sets[name] = framed_faces(self._labelled_faces(spec), self.hparams.margin)  # as deployed
        self._pool_validation()
        info_once("images: %s", ", ".join(f"{name} {len(s)}" for name, s in self.sets.items()))

    @staticmethod
    def _exists(name: str, path: str | Path | None) -> bool:
        """Whether a named set's folder exists; a missing one is skipped with a warning, so that the default
        config works where ../shared is absent."""
        if path is None or not Path(path).is_dir():
            log.warning("data set %r skipped: folder %s not found", name, path)
            return False
        return True

    def _labelled_faces(self, spec: PhotoSpec) -> list[tuple[Path, int, Face]]:
        """(photo, class index, detected face) of each labelled face of a photo spec (``photos.labelled_faces``)."""
        photos, boxes = (spec, None) if isinstance(spec, str) else (spec["photos"], spec.get("boxes"))
        return labelled_faces(photos, boxes, self.hparams.cache_dir, self.hparams.skip_bad_files)

    def _pool_validation(self) -> None:
        """With extra validation sets, ``val`` becomes the pool of ``val_pool`` (default: all of them and the
        split, ``val_dataset``), so that checkpoints, early stopping and the threshold fit real faces too."""
        extra = [name for name in self.val_set_names if name not in ("val", "val_dataset")]
        if not extra:
            return
        self.sets = {"val_dataset": self.sets.pop("val"), **self.sets}
        pooled = [self.sets[name] for name in (self.hparams.val_pool or ["val_dataset", *extra])]
        self.sets["val"] = ImageSet.concat(pooled)

    def _real_training(self) -> list[ImageSet]:
        """Labelled real photos added to training: each face cut with the deployment margin (or with each of
        ``real_margins``: framings other sources crop faces with), ``real_repeat`` times (they are a small share
        of the training part); with ``synthetic.real_faces``, masks are also drawn on their bare faces."""
        margins = self.hparams.real_margins or [self.hparams.margin]
        parts = []
        for name, spec in (self.hparams.real_photos or {}).items():
            folder = photo_folder(spec)
            if folder is None or not folder.is_dir():
                raise DatasetError(f"{folder}: real training photos not found (data.real_photos.{name})")
            found = self._labelled_faces(spec)
            info_once(
                "real training faces %s: %d with a mask, %d without (margins %s, each seen %d times an epoch)",
                name,
                sum(label for _, label, _ in found),
                sum(label == 0 for _, label, _ in found),
                margins,
                self.hparams.real_repeat,
            )
            parts += [framed_faces(found, margin) for margin in margins] * self.hparams.real_repeat
            if (self.hparams.synthetic or {}).get("real_faces"):
                bare = [(path, face) for path, label, face in found if label == 0 and face.landmarks]
                paths, faces = [path for path, _ in bare], [face for _, face in bare]
                parts.append(self._synthetic(paths, faces, [0] * len(bare), margins))
        return parts

    def _from_photos(self, train: ImageSet) -> ImageSet:
        """The training part re-made from its full-size photos where asked: framed by the face detector
        (``framing``), plus masks drawn on its own faces (``synthetic``). Validation and Test faces are
        never drawn on."""
        options, framing = self.hparams.synthetic, self.hparams.framing
        if not options and framing == "dataset":
            return train
        photos = Path(self.hparams.photos or "none")  # not "": that would be the working directory
        if not photos.is_dir():
            raise DatasetError(
                f"{photos}: full-size training photos not found (data.photos); "
                "data/synthetic and data.framing=detector|both draw on them"
            )
        paths = photo_paths(photos, train)
        faces = largest_faces(paths, self.hparams.cache_dir, self.hparams.skip_bad_files)
        margin = self.hparams.margin
        margins = {"dataset": [None], "detector": [margin], "both": [None, margin]}[framing]
        parts = [train] if None in margins else []
        if margin in margins:
            parts.append(self._detector_framed(train, paths, faces))
        if options:
            parts.append(self._synthetic(paths, faces, train.labels.tolist(), margins))
        return ImageSet.concat(parts)

    def _synthetic(
        self,
        paths: Sequence[Path | None],
        faces: Sequence[Face | None],
        labels: list[int],
        margins: list[float | None],
    ) -> ImageSet:
        """Masks (and, if asked, hands, beards, scarves) drawn on the faces of full-size photos."""
        options = {key: value for key, value in self.hparams.synthetic.items() if key != "real_faces"}

        def draw() -> np.ndarray:  # one array for the cache: each row a flattened image and its label
            images, new_labels = synthesize(paths, faces, labels, margins=margins, **options)
            return np.concatenate(
                [images.reshape(len(images), 28 * 28), new_labels[:, None].astype(np.uint8)], 1
            )

        key = [paths, labels, options, margins, VERSION, [face and face.box for face in faces]]
        rows = cached(self.hparams.cache_dir, "synthetic", key, draw)
        new_labels = torch.from_numpy(rows[:, -1].astype(np.int64))
        info_once(
            "synthetic faces: %d with a mask, %d without", int(new_labels.sum()), int((new_labels == 0).sum())
        )
        return ImageSet(
            torch.from_numpy(rows[:, :-1].reshape(-1, 1, 28, 28).copy()),
            new_labels,
            [Path(self.hparams.photos or "") / "synthetic" / f"{i}.png" for i in range(len(rows))],
        )

    def _detector_framed(
        self, train: ImageSet, paths: list[Path | None], faces: list[Face | None]
    ) -> ImageSet:
        """Each training image cut from its photo like ``facemask detect`` cuts a face (where one was found)."""
        cropper = FaceCropper(margin=self.hparams.margin)
        reframed = cached(
            self.hparams.cache_dir,
            "framed",
            [paths, cropper.margin],
            lambda: np.stack(
                [
                    cropper.crop(open_image(path), face) if path and face else image[0].numpy()
                    for path, face, image in zip(paths, faces, train.images, strict=True)
                ]
            ),
        )
        info_once("detector-framed training images: %d of %d", sum(f is not None for f in faces), len(train))
        return ImageSet(torch.from_numpy(reframed).unsqueeze(1), train.labels, train.paths)

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

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(name) for name in self.val_set_names]
        return loaders if len(loaders) > 1 else loaders[0]

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
