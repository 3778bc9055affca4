"""MaskClassifier: any backbone from ``facemask.models`` trained as a binary mask / no-mask classifier."""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import get_object, instantiate
from lightning.pytorch import LightningModule
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import CatMetric, MeanMetric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryConfusionMatrix,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
    BinaryROC,
)

from facemask.errors import FacemaskError
from facemask.evaluation.calibration import threshold_for
from facemask.models.profile import count_macs
from facemask.vision.crops import DEFAULT_MARGIN
from facemask.vision.spec import DEFAULT_SPEC, InputSpec


class LossNotFinite(FacemaskError, FloatingPointError):
    """A NaN or infinite loss: the run stops at that step instead of writing garbage checkpoints."""


def scalar_metrics() -> MetricCollection:
    """The per-stage scores; WithMask (index 1) is the positive class."""
    return MetricCollection(
        {
            "acc": BinaryAccuracy(),
            "precision": BinaryPrecision(),
            "recall": BinaryRecall(),
            "f1": BinaryF1Score(),
            "auroc": BinaryAUROC(),
        }
    )


def curve_metrics() -> MetricCollection:
    """Metrics that become figures rather than scalars."""
    return MetricCollection({"confmat": BinaryConfusionMatrix(), "roc": BinaryROC()})


def stage_metrics(
    names: list[str], device: torch.device | str = "cpu"
) -> tuple[nn.ModuleDict, nn.ModuleDict, nn.ModuleDict]:
    """Scores, mean loss and curves for each named dataloader of a stage."""
    return (
        nn.ModuleDict({name: scalar_metrics() for name in names}).to(device),
        nn.ModuleDict({name: MeanMetric() for name in names}).to(device),
        nn.ModuleDict({name: curve_metrics() for name in names}).to(device),
    )


def plain(config: Any) -> Any:
    """Plain containers, so that checkpoints load with ``torch.load(weights_only=True)``."""
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config


class MaskClassifier(LightningModule):
    """Normalises [0, 1] images, runs ``net``, logs torchmetrics per stage (``callbacks`` draws their curves).

    ``net``, ``optimizer`` and ``scheduler`` arrive as Hydra configs (``_recursive_: false`` in
    ``src/facemask/conf/model``) and are stored in the checkpoint's hyperparameters, so a checkpoint alone rebuilds
    the model: ``MaskClassifier.load_from_checkpoint(path)``. A ready ``nn.Module`` works too (tests).
    Normalisation lives in the model, not the data pipeline, so that exported models carry it; so does
    ``margin``, the crop margin around the detector's box its faces were cut with (``data.margin``), and
    ``input_spec``, the input size and channels (``data.size``, ``data.channels``: vision/spec.py), which predict, detect, serve
    and calibrate cut faces with. A net given as a config is built for that spec (its ``in_chans``, and its
    ``img_size`` where the net takes one).
    """

    def __init__(
        self,
        net: nn.Module | Mapping[str, Any],
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        mean: float = 0.5,
        std: float = 0.5,
        operating_point: Mapping[str, Any] | None = None,
        flip_tta: bool = False,
        margin: float = DEFAULT_MARGIN,
        label_smoothing: float = 0.0,
        input_spec: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        configs = {
            "net": net,
            "optimizer": optimizer,
            "scheduler": scheduler,
            "mean": mean,
            "std": std,
            "operating_point": operating_point,
            "flip_tta": flip_tta,
            "margin": margin,
            "label_smoothing": label_smoothing,
            "input_spec": InputSpec.recorded(plain(input_spec)).record(),
        }
        self.save_hyperparameters(
            {key: plain(value) for key, value in configs.items() if not isinstance(value, nn.Module)},
            logger=False,
        )
        self.net = net if isinstance(net, nn.Module) else net_for(net, self.spec)
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)
        # The decision threshold on P(WithMask), chosen on the validation split every epoch to meet
        # ``operating_point`` (e.g. precision >= 0.99): persistent, so each checkpoint carries its own.
        self.register_buffer("threshold", torch.tensor(0.5))
        # Lightning's model summary runs it to count FLOPs and show each layer's sizes (else "Total FLOPs: 0")
        self.example_input_array = torch.zeros(1, *self.spec.tensor_shape)
        self.val_scores, self.val_targets = CatMetric(), CatMetric()
        # Every score, the loss included, is a torchmetrics state: gathered across processes under DDP
        # in this module's epoch-end hooks, in the same order on every process.
        self.train_metrics, self.train_loss = scalar_metrics(), MeanMetric()
        self.val_set_names, self.test_set_names = ["val"], ["test"]
        self.val_metrics, self.val_losses, self.val_curves = stage_metrics(self.val_set_names)
        self.test_metrics, self.test_losses, self.test_curves = stage_metrics(self.test_set_names)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, 2) for images (N, channels, size, size) in [0, 1] (the input spec).

        With ``flip_tta`` the eval-mode logits average the image and its mirror (faces are left-right
        symmetric, the two views' errors are not): test-time augmentation, also in validation and predictions.
        """
        x = (images - self.mean) / self.std
        if self.hparams.get("flip_tta") and not self.training:
            return (self.net(x) + self.net(x.flip(-1))) / 2
        return self.net(x)

    @property
    def spec(self) -> InputSpec:
        """The input size and channels the model reads (checkpoints before it was recorded: 28 / 1)."""
        return InputSpec.recorded(self.hparams.get("input_spec"))

    @property
    def macs_per_face(self) -> int:
        """What scoring one face costs as deployed: the net's MACs at its input spec, twice with ``flip_tta``."""
        passes = 2 if self.hparams.get("flip_tta") else 1
        return passes * count_macs(self.net, (1, *self.spec.tensor_shape))

    @property
    def margin(self) -> float:
        """The crop margin to cut faces with (checkpoints before it was recorded: the default)."""
        return float(self.hparams.get("margin", DEFAULT_MARGIN))

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """P(WithMask) (N,) for images (N, channels, size, size) in [0, 1]; WithMask where it exceeds ``threshold``."""
        return self(images).softmax(dim=-1)[:, 1]

    def setup(self, stage: str) -> None:
        """One metric set per validation and test dataloader, named as the datamodule names them
        (val, val_dataset, val_real; test, realworld...)."""
        datamodule = self.trainer.datamodule
        names = getattr(datamodule, "val_set_names", None)
        if names and names != self.val_set_names:
            self.val_set_names = list(names)
            self.val_metrics, self.val_losses, self.val_curves = stage_metrics(names, self.device)
        names = getattr(datamodule, "test_set_names", None)
        if stage == "test" and names and names != self.test_set_names:
            self.test_set_names = list(names)
            self.test_metrics, self.test_losses, self.test_curves = stage_metrics(names, self.device)

    def _step(
        self,
        batch: list[torch.Tensor],
        prefix: str,
        metrics: MetricCollection,
        loss_mean: MeanMetric,
        curves: MetricCollection | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        logits = self(images)
        smoothing = self.hparams.get("label_smoothing", 0.0) if prefix == "train" else 0.0
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        if not torch.isfinite(loss):
            raise LossNotFinite(
                f"{prefix}/loss is {loss.item()} at global step {self.global_step}: training diverged "
                "(try a lower model.optimizer.lr); the checkpoints written before this step are intact"
            )
        probs = logits.detach().softmax(dim=-1)[:, 1]
        metrics.update(probs, labels)
        loss_mean.update(loss.detach(), weight=len(labels))
        if curves is not None:
            curves.update(probs, labels)
        return loss, probs

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", self.train_metrics, self.train_loss)[0]

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.val_set_names[dataloader_idx]
        probs = self._step(batch, name, self.val_metrics[name], self.val_losses[name], self.val_curves[name])[
            1
        ]
        if name == "val":  # the threshold is chosen on the pool every choice is made on
            self.val_scores.update(probs)
            self.val_targets.update(batch[1])

    def test_step(self, batch: list[torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.test_set_names[dataloader_idx]
        self._step(batch, name, self.test_metrics[name], self.test_losses[name], self.test_curves[name])

    def on_test_epoch_start(self) -> None:
        """Test sets are scored at the checkpoint's operating threshold, as predictions are made."""
        for curves in self.test_curves.values():
            curves.reset()
        for metric in [*self.test_metrics.values(), *self.test_curves.values()]:
            for member in metric.values():
                if hasattr(member, "threshold"):
                    member.threshold = float(self.threshold)

    def on_validation_epoch_start(self) -> None:
        """The curves (figures for ``callbacks.CurveFigures``) start afresh every epoch, drawn or not."""
        for curves in self.val_curves.values():
            curves.reset()

    def on_train_epoch_end(self) -> None:
        self._log_scores("train", self.train_metrics, self.train_loss)

    def on_validation_epoch_end(self) -> None:
        for name in self.val_set_names:
            self._log_scores(name, self.val_metrics[name], self.val_losses[name])
        self._update_threshold()

    def _update_threshold(self) -> None:
        """Move ``threshold`` to the operating point of these weights on the validation split."""
        probs, labels = self.val_scores.compute(), self.val_targets.compute()
        self.val_scores.reset()
        self.val_targets.reset()
        target = self.hparams.get("operating_point")
        if not target or self.trainer.sanity_checking:
            return
        quiet = self.trainer.state.fn == "fit"  # early epochs rarely reach the target: warn only after fit
        self.threshold.fill_(
            threshold_for(probs, labels.long(), target["metric"], target.get("target"), warn=not quiet)
        )
        self.log("val/threshold", self.threshold, add_dataloader_idx=False)

    def on_test_epoch_end(self) -> None:
        for name in self.test_set_names:
            self._log_scores(name, self.test_metrics[name], self.test_losses[name])

    def _log_scores(self, prefix: str, metrics: MetricCollection, loss_mean: MeanMetric) -> None:
        """Epoch scores, already gathered across processes (so no ``sync_dist``)."""
        scores = metrics.compute()
        loss = loss_mean.compute()
        metrics.reset()
        loss_mean.reset()
        self.log(f"{prefix}/loss", loss, prog_bar=prefix in ("train", "val"), add_dataloader_idx=False)
        self.log_dict(
            {f"{prefix}/{key}": value for key, value in scores.items()},
            prog_bar=prefix == "val",
            add_dataloader_idx=False,
        )

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = instantiate(self.hparams.optimizer)(params=self.parameters())
        if self.hparams.get("scheduler") is None:
            return {"optimizer": optimizer}
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def net_for(net: Mapping[str, Any], spec: InputSpec) -> nn.Module:
    """A net config built for the input spec: ``in_chans`` and ``img_size`` passed where the net takes them
    (timm's names: every family here takes ``in_chans``; VGG sizes its fc head by ``img_size``, the others pool
    globally and take any size)."""
    params = inspect.signature(get_object(net["_target_"])).parameters.values()
    takes = {p.name for p in params} | (
        {"in_chans", "img_size"} if any(p.kind is p.VAR_KEYWORD for p in params) else set()
    )
    if "in_chans" not in takes and spec != DEFAULT_SPEC:
        raise FacemaskError(
            f"model.net {net['_target_']} takes no in_chans: it cannot read {spec.channels}x{spec.size} px input"
        )
    sizes = {"in_chans": spec.channels, "img_size": spec.size}
    return instantiate(net, **{key: value for key, value in sizes.items() if key in takes})


def load_checkpoint(path: str | Path) -> MaskClassifier:
    """The model of a train.py checkpoint, in eval mode; one clear error for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FacemaskError(f"{path}: checkpoint not found")
    try:
        return MaskClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()
    except Exception as err:  # torch and Lightning raise many kinds for a file that is not ours
        raise FacemaskError(f"{path}: not a facemask checkpoint ({unreadable_because(err)})") from err


def unreadable_because(err: Exception) -> str:
    """Why a file did not load, in one line, without torch's advice to load it with ``weights_only=False``
    (running a foreign file's code is never the fix)."""
    if isinstance(err, pickle.UnpicklingError) or "weights_only" in str(err):
        return "not a PyTorch file of tensors and plain values"
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first_line}" if first_line else type(err).__name__
