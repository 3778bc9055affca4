"""Tiny generated face images and models: unit tests never need the real dataset."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from PIL import Image

from facemask.data.datamodule import MaskDataModule
from facemask.module import MaskClassifier
from facemask.vision.crops import DEFAULT_MARGIN
from facemask.vision.faces import Face

#: A linear classifier on the 784 pixels: learns the toy faces below in a few epochs.
TINY_NET = {
    "_target_": "torch.nn.Sequential",
    "_args_": [
        {"_target_": "torch.nn.Flatten"},
        {"_target_": "torch.nn.Linear", "in_features": 784, "out_features": 2},
    ],
}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def face(with_mask: bool, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A learnable toy face: a masked one has a bright band over the lower half."""
    image = rng.normal(110, 25, (size, size))
    if with_mask:
        image[size // 2 :, 4:-4] += 90
    return image.clip(0, 255).astype(np.uint8)


def make_image_folder(
    root: Path, per_class: int = 10, names: tuple[str, str] = ("WithMask", "WithoutMask"), seed: int = 0
) -> Path:
    """``root/<name>/*.png`` with ``per_class`` images each; returns ``root``."""
    rng = np.random.default_rng(seed)
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(face(name.lower().replace("_", "") == "withmask", rng)).save(
                root / name / f"{i}.png"
            )
    return root


def fit(model: MaskClassifier, datamodule: MaskDataModule, root: Path, **trainer_args) -> L.Trainer:
    options = {"max_epochs": 3, "enable_progress_bar": False, "enable_model_summary": False, "logger": False}
    trainer = L.Trainer(default_root_dir=root, **(options | trainer_args))
    trainer.fit(model, datamodule=datamodule)
    return trainer


def tiny_checkpoint(root: Path, margin: float = DEFAULT_MARGIN) -> Path:
    """A TINY_NET checkpoint trained on generated faces (``root/data``), with flip TTA: ``root/tiny.ckpt``;
    ``margin`` is the crop margin it records."""
    data = make_image_folder(root / "data" / "Train", per_class=20).parent
    make_image_folder(data / "Test", per_class=6, seed=1)
    datamodule = MaskDataModule(str(data), val_fraction=0.25, batch_size=8)
    trainer = fit(
        MaskClassifier(TINY_NET, ADAM, flip_tta=True, margin=margin),
        datamodule,
        root,
        enable_checkpointing=False,
    )
    trainer.save_checkpoint(root / "tiny.ckpt")
    return root / "tiny.ckpt"


#: The two faces the stand-in detectors find in a 400x240 photo: left and right.
LEFT, RIGHT = (40.0, 40.0, 160.0, 200.0), (240.0, 40.0, 360.0, 200.0)


def landmarks(box: tuple[float, ...]) -> tuple[tuple[float, float], ...]:
    """Eyes, nose and mouth corners where they sit in an upright face filling ``box``."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    points = ((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.78), (0.65, 0.78))
    return tuple((x0 + fx * w, y0 + fy * h) for fx, fy in points)


class SquareFaces:
    """Stands in for CenterFace: the middle of every square frame is a face; a crop that is not square (a
    padded crop keeps its shape) is a miss."""

    def __init__(self, **_: object) -> None:
        pass

    def __call__(self, frame: np.ndarray) -> list[Face]:
        height, width = frame.shape[:2]
        if height != width:
            return []
        return [Face((0.3 * width, 0.3 * height, 0.7 * width, 0.7 * height), 0.9)]


def crop_folder(
    root: Path, found: int = 3, missed: int = 1, classes: tuple[str, ...] = ("WithMask", "WithoutMask")
) -> Path:
    """``root/<class>/`` of RGB JPEG crops: ``found`` square ones (the stand-in finds their face) and ``missed``
    of 48x64 (it does not)."""
    rng = np.random.default_rng(0)
    for name in classes:
        folder = root / name if name else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(found + missed):
            size = (64, 64) if i < found else (64, 48)
            gray = np.asarray(Image.fromarray(face(name == "WithMask", rng, 64)).resize(size[::-1]))
            Image.fromarray(np.stack([gray] * 3, -1)).save(folder / f"{i}.jpg")
    return root
