"""Mask synthesis on real train photos with the real face detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facemask.data.images import load_image
from facemask.data.synthesize import synthesize
from tests.conftest import MASK28, SHARED_DATA, requires_shared

pytestmark = [pytest.mark.integration, requires_shared]


def test_masks_land_on_the_lower_face_of_real_photos(tmp_path: Path) -> None:
    photos = SHARED_DATA / "train-photos"
    stems = {p.stem for p in sorted((photos / "WithoutMask").iterdir())[:8]}
    masked = synthesize(photos, stems=stems, shades=["dark"], seed=0, cache_dir=tmp_path)
    assert masked.shape == (8, 28, 28)
    originals = np.stack(
        [load_image(MASK28 / "Train" / "WithoutMask" / f"{stem}.png") for stem in sorted(stems)]
    )
    change = np.abs(masked.astype(int) - originals).mean(axis=(0, 2))  # mean change per row
    assert change[16:24].mean() > 3 * change[:8].mean(), "the mouth and chin rows change, the forehead barely"
    assert masked[:, 16:24].mean() < originals[:, 16:24].mean(), "a dark mask darkens the lower face"
