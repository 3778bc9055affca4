"""``python train.py``: fit on Train (validation split), test the best checkpoint, record the run.

Everything a run produces stays in its Hydra output folder: the composed config (``.hydra/``), checkpoints,
TensorBoard events, ``metrics.json`` and figures.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from facemask.callbacks import GracefulStop
from facemask.decision import is_mask
from facemask.errors import exit_on_user_error
from facemask.evaluation.batches import predict_in_batches
from facemask.evaluation.figures import curves_figure
from facemask.evaluation.groups import find_labels, group_accuracy
from facemask.evaluation.tensorboard import read_scalars
from facemask.models.profile import count_macs, count_parameters
from facemask.runs import CONFIG_DIR, SCORE_ORDER, check_writable, set_aside_failed, write_metrics

log = logging.getLogger(__name__)
INTERRUPTED = 130  # the exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it
# Lightning 2.6 on torch 2.14 warns about its own pytree use at every fit/validate/test: noise for users.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# Under DDP Lightning suggests sync_dist for epoch-level logs; MaskClassifier logs torchmetrics results that
# are already gathered across processes (a second reduction would only cost time).
warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting")
# A validation set of one class (val_bare: bare faces only) has no recall or AUROC; torchmetrics says so every epoch.
# Its accuracy is what counts (1 - the false-mask rate at 0.5), and NAME/mask_rate reports it at the threshold.
warnings.filterwarnings("ignore", message=r"No (positive|negative) samples in targets")
# Lightning advertises its cloud logger at every fit, and says that the summary it was given is the one it
# uses: nothing a user of this project can act on.
NOISE = ("💡", "Trainer already configured with model summary")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda r: not r.getMessage().startswith(NOISE)
)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then validate and test the best checkpoint; returns the run's metrics (also in metrics.json)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    check_writable(output_dir)

    datamodule = instantiate(cfg.data)
    model = instantiate(
        cfg.model,
        operating_point=cfg.get("operating_point"),
        margin=datamodule.hparams.margin,
        input_spec=datamodule.spec.record(),
    )
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]  # null: switched off
    stop = GracefulStop()
    trainer = instantiate(cfg.trainer, callbacks=[*callbacks, stop], logger=logger)

    metrics: dict[str, float] = {
        "model/params": count_parameters(model.net),
        "model/macs": count_macs(model.net, (1, *model.spec.tensor_shape)),
    }
    if cfg.get("train"):
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        except SystemExit:  # Lightning's exit after a second Ctrl-C
            raise SystemExit(INTERRUPTED if stop.interrupted else 1) from None
        metrics["epochs"] = trainer.current_epoch
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})
    if cfg.get("test"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        metrics.update(
            validate_and_test(
                trainer, model, datamodule, best or (None if cfg.get("train") else cfg.ckpt_path)
            )
        )

    if trainer.is_global_zero:
        record_run(output_dir, metrics, cfg, trainer.logger)  # a DummyLogger under fast_dev_run
        log.info("run folder: %s", output_dir)
    if stop.interrupted:
        last = output_dir / "checkpoints" / "last.ckpt"
        log.warning(
            "interrupted by Ctrl-C at epoch %d; the best checkpoint so far was tested. Resume with: "
            "python train.py <the same overrides> ckpt_path=%s hydra.run.dir=%s",
            trainer.current_epoch,
            last,
            output_dir,
        )
        raise SystemExit(INTERRUPTED)
    return metrics


def validate_and_test(
    trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule, ckpt_path: str | None
) -> dict[str, float]:
    """Scores of one checkpoint (None: the weights in hand) on the validation split and every test set."""
    if trainer.is_global_zero:
        log.info("evaluating %s", ckpt_path or "the final weights")
    metrics = {}
    for run in (trainer.validate, trainer.test):
        for scores in run(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False):
            metrics.update({key: float(value) for key, value in scores.items()})
    metrics.update(per_group_scores(model, datamodule))
    metrics.update(mask_rates(model, datamodule))
    for prefix in dict.fromkeys(key.split("/")[0] for key in metrics):
        scores = [
            f"{name} {metrics[f'{prefix}/{name}']:.4f}"
            for name in SCORE_ORDER
            if f"{prefix}/{name}" in metrics
        ]
        if trainer.is_global_zero and scores:  # under DDP every process holds the same gathered scores
            log.info("%-10s %s", prefix, "  ".join(scores))
    return metrics


def per_group_scores(model: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, float]:
    """Accuracy per mask type for the test sets with a labels.csv (realworld), at the model's threshold."""
    model.eval()
    scores = {}
    for name in datamodule.test_set_names:
        if find_labels(datamodule.roots[name]) is None:  # no groups: nothing to predict again
            continue
        images = datamodule.sets[name]
        probs = predict_in_batches(lambda x: model.predict_proba(x.to(model.device)), images.floats())
        pools = datamodule.hparams.test_groups
        scores.update(
            group_accuracy(name, images, datamodule.roots[name], probs, float(model.threshold), pools)
        )
    return scores


def mask_rates(model: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, float]:
    """The share of each of ``data.mask_rate_sets`` called a mask at the model's threshold (``NAME/mask_rate``):
    the false-mask rate of a set of bare faces, or how masks worn wrongly are taken."""
    model.eval()
    rates = {}
    for name, images in getattr(datamodule, "mask_rate_sets", {}).items():
        probs = predict_in_batches(lambda x: model.predict_proba(x.to(model.device)), images.floats())
        rates[f"{name}/mask_rate"] = float(is_mask(probs, float(model.threshold)).float().mean())
        rates[f"{name}/n"] = float(len(images))
        log.info("%-10s called masks %.4f of %d", name, rates[f"{name}/mask_rate"], len(images))
    return rates


def record_run(output_dir: Path, metrics: dict[str, float], cfg: DictConfig, logger: Any) -> None:
    """metrics.json, the curves figure, and the hyperparameters beside their final metrics in TensorBoard."""
    write_metrics(output_dir, metrics)
    if not isinstance(logger, TensorBoardLogger):
        return
    scalars = read_scalars(logger.log_dir)
    figures = output_dir / "figures"
    figures.mkdir(exist_ok=True)
    curves_figure(scalars).savefig(figures / "curves.png", dpi=100, bbox_inches="tight")
    params = {
        key: str(value) if isinstance(value, list) else value
        for key, value in flatten(OmegaConf.to_container(cfg, resolve=True)).items()
        if not key.startswith(("paths.", "hydra.", "callbacks."))
    }
    finite = {key: value for key, value in metrics.items() if key in scalars and math.isfinite(value)}
    with SummaryWriter(logger.log_dir) as writer:  # Lightning closed its own writer after testing
        for summary in hparams(params, finite):
            writer.file_writer.add_summary(summary)


def ending(err: BaseException) -> str:
    """How a run that did not finish ended, for its train.log."""
    if isinstance(err, KeyboardInterrupt) or (isinstance(err, SystemExit) and err.code == INTERRUPTED):
        return "interrupted by Ctrl-C"
    if isinstance(err, SystemExit):
        return f"failed: {err.code}"
    return f"failed: {type(err).__name__}: {err}"


def log_to_file(message: str) -> None:
    """An error line for the run's log only (the console shows the error itself, once)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; the hparams plugin takes flat scalar values only."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = (
                value if isinstance(value, int | float | str | bool | list) else str(value)
            )
    return flat


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``optimized_metric`` for sweepers (Optuna)."""
    try:
        with exit_on_user_error():
            metrics = train(cfg)
    except BaseException as err:  # the run's own log says how it ended; the console gets the error once, last
        log_to_file(f"run {ending(err)}")
        set_aside_failed(Path(cfg.paths.output_dir))
        raise
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


if __name__ == "__main__":
    main()
