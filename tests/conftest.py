"""Shared fixtures: tiny generated ImageFolders, Hydra configs composed the way train.py composes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from facemask.runs import CONFIG_DIR
from tests.synthetic import make_image_folder

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MASK28 = SHARED_DATA / "mask28"

#: Overrides that point a composed config at the shared data wherever the tests run from.
SHARED_OVERRIDES = (f"data.root={MASK28}", f"paths.data_root={SHARED_DATA}")

requires_shared = pytest.mark.skipif(not MASK28.is_dir(), reason=f"dataset not found at {MASK28}")


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A dataset root with Train (20 per class) and Test (6 per class)."""
    root = tmp_path / "tiny"
    make_image_folder(root / "Train", per_class=20)
    make_image_folder(root / "Test", per_class=6, seed=1)
    return root


def compose_config(
    *overrides: str, output_dir: Path, log_dir: Path, config: str = "train.yaml"
) -> DictConfig:
    """The config ``config`` composed the way its Hydra app composes it, writing into ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config, overrides=list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(log_dir)
        del cfg.hydra
    return cfg


@pytest.fixture
def train_cfg(tmp_path: Path) -> Iterator[callable]:
    """Factory: ``train_cfg(*overrides)`` -> the composed train (or ``config=``) config writing into tmp_path/run."""

    def make(*overrides: str, output_dir: Path | None = None, config: str = "train.yaml") -> DictConfig:
        return compose_config(
            *overrides, output_dir=output_dir or tmp_path / "run", log_dir=tmp_path, config=config
        )

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny checkpoint trained on generated faces, its ONNX export, and its dataset root (``data``)."""
    from facemask.inference.export import export_onnx
    from tests.synthetic import tiny_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    checkpoint = tiny_checkpoint(root)
    return {"ckpt": checkpoint, "onnx": export_onnx(checkpoint, root / "tiny.onnx"), "data": root / "data"}


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A default model trained briefly on the real dataset (8 epochs, ~94% on Test), and its ONNX export."""
    from facemask.inference.export import export_onnx
    from facemask.train import train

    run = tmp_path_factory.mktemp("trained")
    train(compose_config("trainer.max_epochs=8", *SHARED_OVERRIDES, output_dir=run, log_dir=run))
    GlobalHydra.instance().clear()
    checkpoint = run / "checkpoints" / "last.ckpt"
    return {"ckpt": checkpoint, "onnx": export_onnx(checkpoint, run / "model.onnx")}
