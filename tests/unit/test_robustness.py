"""Robustness report: each corruption does what it claims, graded and deterministic; the report's numbers are real."""

from __future__ import annotations

import csv
import math
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from facemask.evaluation.robustness import CORRUPTIONS, SEVERITIES, corrupt, robustness_report
from tests.synthetic import face

NAMES = list(CORRUPTIONS)


def _smooth(n: int = 8, height: int = 28, width: int = 28) -> Tensor:
    """Smooth random images: pose changes move them further the stronger they are (noise would not)."""
    coarse = torch.rand(n, 1, 7, 7, generator=torch.Generator().manual_seed(1))
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


def _noisy(n: int = 8, height: int = 28, width: int = 28) -> Tensor:
    """Random pixels: full of high frequencies and different everywhere, so every change shows."""
    return torch.rand(n, 1, height, width, generator=torch.Generator().manual_seed(2))


def _toy_faces(per_class: int = 8) -> tuple[Tensor, Tensor]:
    """Toy faces from tests/synthetic.py, masked and unmasked alternating: a masked one is bright below."""
    rng = np.random.default_rng(0)
    labels = torch.tensor([1, 0] * per_class)
    faces = np.stack([face(bool(label), rng) for label in labels.tolist()])
    return torch.from_numpy(faces).float().div(255).unsqueeze(1), labels


def _lower_half_rule(images: Tensor) -> Tensor:
    """A fake model: P(WithMask) from the brightness of the lower half, which the toy faces make learnable."""
    lower = images[..., images.shape[-2] // 2 :, :].mean(dim=(1, 2, 3))
    return torch.sigmoid(20 * (lower - 0.6))


def _high_freq_energy(x: Tensor) -> float:
    return (
        (x[..., 1:] - x[..., :-1]).square().mean() + (x[..., 1:, :] - x[..., :-1, :]).square().mean()
    ).item()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_corruption_keeps_shape_dtype_range_and_is_deterministic(name: str, dtype: torch.dtype) -> None:
    images = _noisy().to(dtype)
    assert corrupt(images, name, 0) is images
    for severity in SEVERITIES:
        out = corrupt(images, name, severity)
        assert out.shape == images.shape and out.dtype == dtype
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert torch.equal(out, corrupt(images.clone(), name, severity))
        assert not torch.equal(out, images)


@pytest.mark.parametrize("name", [name for name in NAMES if name != "hflip"])
def test_stronger_severity_moves_further_from_clean(name: str) -> None:
    images = _smooth()  # like faces: a rotated noise image is equally far from the original at any angle
    distances = [(corrupt(images, name, s) - images).abs().mean().item() for s in SEVERITIES]
    assert distances[0] > 0
    assert all(b >= a - 1e-6 for a, b in pairwise(distances)), distances


def test_hflip_is_the_same_mirror_at_every_severity() -> None:
    images = _noisy()
    for severity in SEVERITIES:
        assert torch.equal(corrupt(images, "hflip", severity), images.flip(-1))


def test_random_corruptions_leave_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    for name in NAMES:
        corrupt(_noisy(), name, 3)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(
    ("name", "statistic", "direction"),
    [
        ("brightness_up", "mean", 1),
        ("brightness_down", "mean", -1),
        ("gamma_up", "mean", -1),  # darker
        ("gamma_down", "mean", 1),  # brighter
        ("contrast_up", "std", 1),
        ("contrast_down", "std", -1),
    ],
)
def test_lighting_moves_in_its_direction(name: str, statistic: str, direction: int) -> None:
    images = _smooth()
    measure = {"mean": lambda x: x.mean().item(), "std": lambda x: x.std().item()}[statistic]
    values = [measure(corrupt(images, name, s)) for s in range(6)]
    assert all(direction * (b - a) > 0 for a, b in pairwise(values)), values


@pytest.mark.parametrize("height", [28, 64])
@pytest.mark.parametrize(("name", "band"), [("occlude_eyes", (0.25, 0.45)), ("occlude_mouth", (0.55, 0.85))])
def test_band_occlusion_changes_only_its_band(name: str, band: tuple[float, float], height: int) -> None:
    images = _noisy(height=height, width=24)
    top, bottom = math.floor(band[0] * height), math.ceil(band[1] * height)
    covered = []
    for severity in SEVERITIES:
        changed = (corrupt(images, name, severity) != images).any(dim=(0, 1, 3))  # per row
        assert not changed[:top].any() and not changed[bottom:].any()
        covered.append(int(changed.sum()))
    assert covered[0] >= 1 and covered == sorted(covered) and covered[-1] > covered[0]


def test_rotation_and_shear_cover_both_directions() -> None:
    half = _smooth(1)
    symmetric = (half + half.flip(-1)) / 2
    for name in ("rotation", "shear"):
        out = corrupt(symmetric.repeat(2, 1, 1, 1), name, 3)
        torch.testing.assert_close(out[1], out[0].flip(-1))  # image 1 turned the other way
        assert not torch.allclose(out[0], out[1])


def test_downscale_removes_high_frequencies() -> None:
    images = _noisy()
    energies = [_high_freq_energy(corrupt(images, "downscale", s)) for s in range(6)]
    assert all(b < a for a, b in pairwise(energies)), energies


def test_unknown_corruption_or_severity_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(_noisy(), "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(_noisy(), "jpeg", 6)
    with pytest.raises(ValueError, match="fog"):
        robustness_report(_lower_half_rule, *_toy_faces(), tmp_path, corruptions=["jpeg", "fog"])


def test_report_rows_files_and_real_numbers(tmp_path: Path) -> None:
    images, labels = _toy_faces()
    rows = robustness_report(_lower_half_rule, images, labels, tmp_path / "report")

    assert len(rows) == 1 + len(SEVERITIES) * len(NAMES)
    assert rows[0] == {
        "corruption": "clean",
        "family": "clean",
        "severity": 0,
        "param": None,
        "acc": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "n": len(labels),
    }
    assert all(0.0 <= row[key] <= 1.0 for row in rows for key in ("acc", "precision", "recall"))
    scores = {(row["corruption"], row["severity"]): row["acc"] for row in rows}
    assert scores[("occlude_mouth", 5)] <= 0.75  # the rule reads the mask region: hiding it must hurt
    assert scores[("hflip", 1)] == 1.0 and scores[("occlude_eyes", 5)] == 1.0  # ...and nothing else must

    folder = tmp_path / "report"
    with open(folder / "robustness.csv") as file:
        table = list(csv.DictReader(file))
    assert len(table) == len(rows) and float(table[-1]["acc"]) == rows[-1]["acc"]
    markdown = (folder / "robustness.md").read_text()
    assert all(f"| {name} |" in markdown for name in NAMES) and "Severity 3: worst" in markdown
    for png, min_size in [("robustness.png", (600, 400)), ("robustness_examples.png", (300, 500))]:
        with Image.open(folder / png) as image:
            assert image.width >= min_size[0] and image.height >= min_size[1]


def test_report_on_a_subset_and_precision_without_positives(tmp_path: Path) -> None:
    images, labels = _toy_faces(per_class=3)
    rows = robustness_report(lambda x: torch.zeros(len(x)), images, labels, tmp_path, corruptions=["jpeg"])
    assert [(row["corruption"], row["severity"]) for row in rows] == [("clean", 0)] + [
        ("jpeg", s) for s in SEVERITIES
    ]
    assert all(row["acc"] == 0.5 and row["precision"] == 0.0 and row["recall"] == 0.0 for row in rows)
