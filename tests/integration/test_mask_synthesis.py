"""Mask synthesis, re-shading and detector framing on real train photos with the real face detector,
and issue 7's ablation command on small settings."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from facemask.data.photos import largest_faces
from facemask.data.synthesize import synthesize
from facemask.vision.images import load_image
from tests.cli import run_train
from tests.conftest import MASK28, SHARED_DATA, SHARED_OVERRIDES, requires_shared

pytestmark = [pytest.mark.integration, requires_shared]
PHOTOS = SHARED_DATA / "train-photos"


def lower_face_change(folder: str, per_face: int, reshaded: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dark masks drawn on (or re-shaded in) 8 photos of ``folder``: (masked, originals, mean change per row)."""
    paths = sorted((PHOTOS / folder).iterdir())[:80:10]
    labels = [int(folder == "WithMask")] * len(paths)
    masked, _ = synthesize(paths, largest_faces(paths), labels, ["surgical"], ["dark"], per_face, reshaded)
    originals = np.stack([load_image(MASK28 / "Train" / folder / f"{path.stem}.png") for path in paths])
    assert masked.shape == originals.shape, "a face and (for WithMask) the pasted mask found in every photo"
    return masked, originals, np.abs(masked.astype(int) - originals).mean(axis=(0, 2))


def test_masks_land_on_the_lower_face_of_real_photos() -> None:
    masked, originals, change = lower_face_change("WithoutMask", per_face=1, reshaded=0)
    assert change[16:24].mean() > 3 * change[:8].mean(), "the mouth and chin rows change, the forehead barely"
    assert masked[:, 16:24].mean() < originals[:, 16:24].mean(), "a dark mask darkens the lower face"


def test_pasted_masks_are_reshaded_in_place() -> None:
    masked, originals, change = lower_face_change("WithMask", per_face=0, reshaded=1)
    assert change[16:24].mean() > 3 * change[:8].mean(), "the pasted mask changes, the forehead barely"
    assert masked[:, 16:24].mean() < originals[:, 16:24].mean() - 30, "the light-blue clip-art turned dark"


@pytest.mark.slow
def test_ablation_command_on_small_settings(tmp_path: Path) -> None:
    """Two arms of issue 7's `python train.py -m experiment=best ablation=... seed=...` (they pin its 28x28 gray
    input; 64 px would re-make every Train image from a photo, and 12 a class are linked here), 1 epoch."""
    photos = tmp_path / "photos"
    for folder in ("WithMask", "WithoutMask"):
        (photos / folder).mkdir(parents=True)
        for path in sorted((PHOTOS / folder).iterdir())[:12]:
            (photos / folder / path.name).symlink_to(path)
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m", "experiment=best", "ablation=baseline,all", "seed=0", "trainer.max_epochs=1",
        "model.net.width_mult=0.5", f"data.photos={photos}", f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={sweep}", *SHARED_OVERRIDES,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with open(sweep / "summary.csv", newline="") as file:
        rows = {row["config"]: row for row in csv.DictReader(file)}
    assert set(rows) == {"ablation=baseline", "ablation=all"}
    for row in rows.values():
        for column in (
            "test/acc",
            "realworld/acc",
            "realworld/recall",
            "realworld/acc/dark",
            "realworld/acc/light",
        ):
            assert 0 <= float(row[column]) <= 1, column
    assert "realworld/acc/dark" in (sweep / "summary.md").read_text()
    log = (sweep / "1" / "train.log").read_text()
    assert "detector-framed training images: " in log and "synthetic faces: " in log
    assert "synthetic" not in (sweep / "0" / "train.log").read_text()
