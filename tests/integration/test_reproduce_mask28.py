"""``facemask data prepare`` on the real source photos reproduces ../shared/data/mask28 pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli import run_facemask
from tests.conftest import MASK28, SHARED_DATA, requires_shared

pytestmark = [pytest.mark.integration, requires_shared]


def assert_identical_to(prepared: Path, reference: Path, count: int) -> None:
    written = sorted(prepared.rglob("*.png"))
    assert len(written) == count
    for path in written:
        expected = reference / path.parent.name / path.name
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(expected))), path


def test_prepare_test_photos_reproduces_mask28_test(tmp_path: Path) -> None:
    result = run_facemask("data", "prepare", str(SHARED_DATA / "photos"), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (
        "Train WithMask 84  WithoutMask 84" in result.stdout
        and "Test  WithMask 13  WithoutMask 13" in result.stdout
    )
    assert_identical_to(tmp_path / "out", MASK28 / "Test", 194)


@pytest.mark.slow
def test_prepare_train_photos_reproduces_mask28_train(tmp_path: Path) -> None:
    result = run_facemask(
        "data", "prepare", str(SHARED_DATA / "train-photos"), str(tmp_path / "out"), "--test-fraction", "0"
    )
    assert result.returncode == 0, result.stderr
    assert "Train WithMask 658  WithoutMask 657" in result.stdout
    assert_identical_to(tmp_path / "out", MASK28 / "Train", 1315)
