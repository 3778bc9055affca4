"""The data module's sources as Hydra ``_target_`` configs: the shipped configs compose to the very training set,
validation pool, test sets and cache files that the flat arguments they replaced made (issue 22, item 5).

The digests below were taken with the flat arguments (commit 87926cd) on the same generated data root; a change
to what a source makes, or to a cache key, fails here. Paths are relative (the test runs in its folder) and the
one absolute path in a key (a boxes CSV's photos) is hashed as relative, so cache names are the same wherever it
runs. The pixel digests also hold Pillow's and OpenCV's resizing (Pillow 13.0, OpenCV 5.1 when taken): where a new
release alone changes them, the cache-name digests still guard the keys.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

import facemask.data.cache as cache
import facemask.vision.faces as faces
from facemask.data.folder import CLASSES
from facemask.data.labelled import Photos
from facemask.data.sources import DatasetFaces, RealCrops
from tests.synthetic import LEFT, RIGHT, face, landmarks, make_image_folder


class StandIn:
    """Stands in for CenterFace: two faces in a 400x240 photo, else one in the middle of the frame."""

    def __init__(self, **_: object) -> None:
        pass

    def __call__(self, frame: np.ndarray) -> list[faces.Face]:
        height, width = frame.shape[:2]
        boxes = (
            [LEFT, RIGHT]
            if (width, height) == (400, 240)
            else [(0.25 * width, 0.2 * height, 0.75 * width, 0.8 * height)]
        )
        return [faces.Face(box, 0.9, landmarks(box)) for box in boxes]


def photos_like(dataset: Path, photos: Path, seed: int) -> None:
    """Full-size colour photos of a dataset's images (same class folders and stems)."""
    rng = np.random.default_rng(seed)
    for image in sorted(dataset.rglob("*.png")):
        target = photos / image.parent.name / image.name
        target.parent.mkdir(parents=True, exist_ok=True)
        gray = np.asarray(Image.open(image).resize((200, 240)))
        tint = rng.integers(0, 40, 3)
        Image.fromarray(np.clip(gray[..., None] + tint, 0, 255).astype(np.uint8)).save(target)


def annotated(folder: Path, split: str, n: int, seed: int) -> None:
    """``n`` photos of a masked (left) and a bare (right) face under ``folder/photos/split``, rows in boxes.csv."""
    photos = folder / "photos" / split
    photos.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (240, 400, 3), dtype=np.uint8)).save(photos / f"{i}.png")
        rows += [
            f"photos/{split}/{i}.png,{split},0,60,90,140,190,cloth,WithMask",
            f"photos/{split}/{i}.png,{split},1,260,90,340,190,,WithoutMask",
        ]
    boxes = folder / "boxes.csv"
    header = [] if boxes.is_file() else ["file,split,face,x0,y0,x1,y1,mask_type,class"]
    with boxes.open("a") as out:
        out.write("\n".join([*header, *rows]) + "\n")


def crops(folder: Path, found: int, missed: int, classes: tuple[str, ...] = CLASSES, seed: int = 0) -> None:
    """Colour face crops: ``found`` square ones (the stand-in finds a face in their padded frame: the
    middle) and ``missed`` that are not."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(found + missed):
            gray = np.asarray(
                Image.fromarray(face(name == "WithMask", rng, 64)).resize((64, 64 if i < found else 48))
            )
            Image.fromarray(np.stack([gray, gray // 2 + 60, gray], -1)).save(folder / name / f"{i}.png")


def data_root(root: Path) -> Path:
    """Every set of the shared data root, tiny and generated: what experiment=best reads."""
    make_image_folder(root / "mask28" / "Train", per_class=12)
    make_image_folder(root / "mask28" / "Test", per_class=4, seed=1)
    photos_like(root / "mask28" / "Train", root / "train-photos", 0)
    photos_like(root / "mask28" / "Test", root / "photos", 1)
    make_image_folder(root / "realworld" / "mask28", per_class=3, seed=2)
    photos_like(root / "realworld" / "mask28", root / "realworld" / "photos", 2)
    annotated(root / "realmasks", "train", 4, 3)
    annotated(root / "realmasks", "val", 2, 4)
    for seed, part in enumerate(("train", "val")):
        crops(root / "realfaces" / "masked" / part, 4, 1, seed=seed)
        crops(root / "realfaces" / "bare" / part, 3, 1, ("",), seed=seed + 2)
    crops(root / "realfaces" / "incorrect", 2, 0, ("",), seed=4)
    return root


def digest(*arrays: object) -> str:
    hashed = hashlib.sha256()
    for array in arrays:
        hashed.update(
            np.ascontiguousarray(array).tobytes() if isinstance(array, np.ndarray) else repr(array).encode()
        )
    return hashed.hexdigest()[:16]


def composed(train_cfg, arm: str, *overrides: str) -> dict[str, object]:
    """What a composed config's data module makes: each set's size and digest, the training sources' sizes,
    the cache files it wrote."""
    cache_dir = Path("cache") / arm
    cfg = train_cfg("paths.data_root=data", f"data.cache_dir={cache_dir}", *overrides)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    sets = {**datamodule.sets, **{f"rate:{n}": s for n, s in datamodule.mask_rate_sets.items()}}
    return {
        "train_sizes": datamodule.train_sizes,
        **{name: (len(s), digest(s.images.numpy(), s.labels.numpy())) for name, s in sorted(sets.items())},
        "cache": digest(sorted(p.name for p in cache_dir.glob("*.npy"))),
    }


#: arm -> overrides of the shipped configs
ARMS = {
    "default": (),
    "best": ("experiment=best",),
    "issue7_all": ("experiment=best", "ablation=all"),
    "issue12_hard": ("experiment=best", "ablation=hard"),
    "issue12_real_val": ("experiment=best", "ablation=real_val"),
    "issue12_real_train": ("experiment=best", "ablation=real_train"),
    "mined": (
        "experiment=best",
        "data/mined=faces",
        "data.sources.hard_negatives.crops=data/realfaces/bare/val",
        "+data.sources.realmasks.synthesis=${data.sources.dataset.synthesis}",
    ),
}


class HereRelative:
    """hashlib for the cache: a key's absolute paths (a boxes CSV's photos) hashed as relative to the working
    directory, so that cache names do not depend on where the test's folder is."""

    def __init__(self, here: Path) -> None:
        self.here = str(here).encode()

    def sha1(self, data: bytes) -> hashlib._Hash:
        return hashlib.sha1(data.replace(self.here, b"."))


@pytest.fixture
def in_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(faces, "CenterFace", StandIn)
    monkeypatch.setattr(cache, "hashlib", HereRelative(tmp_path))
    return data_root(Path("data"))


#: the sets no training arm changes: Test, realworld and the mask-rate sets, at 28 px gray and 64 px colour
GRAY_EVAL = {
    "rate:bare_val": (4, "e2ca24900a541b54"),
    "rate:incorrect": (2, "7c08a821315afbeb"),
    "realworld": (6, "3d99afb8789d03b7"),
    "realworld_detected": (6, "e08ba09c4ca807c2"),
    "test": (8, "570c1e25f7d09831"),
}
RGB_EVAL = {
    "rate:bare_val": (4, "4805e7f9af45f52e"),
    "rate:incorrect": (2, "9c5f53fec421a184"),
    "realworld": (6, "b1a30dfe5cfab033"),
    "realworld_detected": (6, "66b335738f2addbe"),
    "test": (8, "ff7e04bc632189a7"),
}

#: arm -> what the flat arguments made of it (commit 87926cd): each set's size and digest, the cache files
GOLDEN = {
    "default": {
        **GRAY_EVAL,
        "train_sizes": {"dataset": 22},
        "train": (22, "0d001957723e8800"),
        "val": (2, "0ab132d0667ae952"),
        "cache": "979782a8e92c3da1",
    },
    "best": {
        **RGB_EVAL,
        "train_sizes": {"dataset": 94, "realmasks": 32, "realfaces_masked": 20, "realfaces_bare": 8},
        "train": (154, "83dfe57816732a78"),
        "val": (36, "e379f0f9d022e1ac"),
        "val_bare": (4, "4805e7f9af45f52e"),
        "val_dataset": (2, "86545b3af8492537"),
        "val_masked": (10, "ae08c0c1ce6651c8"),
        "val_real": (4, "a1d978562c44164f"),
        "cache": "f2460c853ae9258f",
    },
    "issue7_all": {
        **GRAY_EVAL,
        "train_sizes": {"dataset": 94},
        "train": (94, "ce0b0dd9404f0aab"),
        "val": (2, "0ab132d0667ae952"),
        "cache": "66b34f5b3d405222",
    },
    "issue12_hard": {
        **GRAY_EVAL,
        "train_sizes": {"dataset": 116, "realmasks": 32},
        "train": (148, "94387976bdd73b90"),
        "val": (6, "e0513563c84aa0ec"),
        "val_dataset": (2, "0ab132d0667ae952"),
        "val_real": (4, "b37724a5ec183ead"),
        "cache": "00871215d681023d",
    },
    "issue12_real_val": {
        **GRAY_EVAL,
        "train_sizes": {"dataset": 94},
        "train": (94, "ce0b0dd9404f0aab"),
        "val": (6, "e0513563c84aa0ec"),
        "val_dataset": (2, "0ab132d0667ae952"),
        "val_real": (4, "b37724a5ec183ead"),
        "cache": "1c52e80dc8acb43a",
    },
    "issue12_real_train": {
        **GRAY_EVAL,
        "train_sizes": {"dataset": 94, "realmasks": 8},
        "train": (102, "d6a3ce0165bce992"),
        "val": (2, "0ab132d0667ae952"),
        "cache": "48545ea97e7b5601",
    },
    "mined": {
        **RGB_EVAL,
        "train_sizes": {
            "dataset": 94,
            "realmasks": 48,
            "realfaces_masked": 20,
            "realfaces_bare": 8,
            "hard_negatives": 16,
        },
        "train": (186, "fb2196a3732d7bf6"),
        "val": (36, "e379f0f9d022e1ac"),
        "val_bare": (4, "4805e7f9af45f52e"),
        "val_dataset": (2, "86545b3af8492537"),
        "val_masked": (10, "ae08c0c1ce6651c8"),
        "val_real": (4, "a1d978562c44164f"),
        "cache": "9c1640baaa082e33",
    },
}


@pytest.mark.parametrize("arm", ARMS)
def test_the_shipped_configs_compose_the_sets_they_did(arm: str, in_data_root: Path, train_cfg) -> None:
    assert composed(train_cfg, arm, *ARMS[arm]) == GOLDEN[arm]


def test_overrides_add_change_and_drop_sources_and_sets(in_data_root: Path, train_cfg) -> None:
    """The overrides docs/research.md shows: add a set, change a source, drop one, mined faces back."""
    cfg = train_cfg(
        "paths.data_root=data",
        "data/real=realmasks",
        "data/mined=faces",
        "data.sources.hard_negatives.crops=data/realfaces/bare/val",
        "data.sources.realmasks=null",
        "data.sources.dataset.framing=both",
        "+data.test_sets.site={_target_:facemask.data.labelled.Photos,photos:data/realworld/photos}",
        "+data.sources.staff={_target_:facemask.data.sources.RealCrops,crops:data/realfaces/bare/train,label:WithoutMask}",
    )
    datamodule = instantiate(cfg.data)
    assert list(datamodule.sources) == ["dataset", "hard_negatives", "staff"], "realmasks dropped"
    assert datamodule.sources["dataset"] == DatasetFaces(framing="both")
    assert datamodule.sources["staff"] == RealCrops(crops="data/realfaces/bare/train", label="WithoutMask")
    assert datamodule.named["test"]["site"] == Photos(photos="data/realworld/photos")
    datamodule.setup("fit")
    assert datamodule.train_sizes == {"dataset": 2 * 22, "hard_negatives": 2 * 4, "staff": 4}
    assert len(datamodule.sets["site"]) == len(datamodule.sets["realworld_detected"]) == 6
    missing = train_cfg("paths.data_root=data", "data/mined=faces")
    with pytest.raises(Exception, match=r"Missing mandatory value: data\.sources\.hard_negatives\.crops"):
        instantiate(missing.data)


def test_checkpoints_keep_plain_values_only(in_data_root: Path, train_cfg) -> None:
    """The data module's hyperparameters go into every checkpoint, which loads with weights_only: the sources
    and sets (objects) stay in the run's config instead."""
    datamodule = instantiate(train_cfg("paths.data_root=data", "experiment=best").data)
    kept = dict(datamodule.hparams)
    assert not {"sources", "val_sets", "test_sets", "mask_rate_sets", "augment"} & set(kept)
    assert all(isinstance(v, str | int | float | bool | list | dict | type(None)) for v in kept.values())
