"""BatchAugment: presets load from Hydra, each op does what it claims, and runs are reproducible."""

from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor

from facemask import runs
from facemask.data.transforms import BatchAugment, augmentation_sheet

PRESET_DIR = Path(runs.CONFIG_DIR) / "data" / "augment"
PRESETS = ["none", "light", "strong"]

# Each op alone, switched fully on, with ranges wide enough that the effect is always visible.
OPS: dict[str, dict[str, Any]] = {
    "flip": {"flip_p": 1.0},
    "affine": {"affine_p": 1.0, "degrees": 15.0, "scale": (0.9, 1.1), "translate": 0.1, "shear": 5.0},
    "lighting": {"lighting_p": 1.0, "brightness": 0.2, "contrast": (0.7, 1.3), "gamma": (0.7, 1.4)},
    "blur": {"blur_p": 1.0, "blur_sigma": (0.5, 1.5)},
    "downscale": {"downscale_p": 1.0, "downscale_sizes": (14, 10, 7)},
    "erase": {"erase_p": 1.0, "erase_area": (0.05, 0.25)},
    "noise": {"noise_p": 1.0, "noise_std": 0.1},
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _images(n: int = 8, channels: int = 1, height: int = 28, width: int = 28) -> Tensor:
    """Random images: left-right asymmetric and full of high frequencies, so every op shows."""
    return torch.rand(n, channels, height, width, generator=torch.Generator().manual_seed(1))


def _preset(name: str) -> BatchAugment:
    """A preset as Hydra composes it: the presets it names in ``defaults`` first, then its own keys."""
    config = OmegaConf.load(PRESET_DIR / f"{name}.yaml")
    bases = [OmegaConf.load(PRESET_DIR / f"{base}.yaml") for base in config.pop("defaults", [])]
    return instantiate(OmegaConf.merge(*bases, config))


def _high_freq_energy(x: Tensor) -> Tensor:
    """Per-sample mean squared difference between neighbouring pixels."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).square().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).square().flatten(1).mean(1)
    return dx + dy


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_preset_keeps_shape_dtype_and_range(name: str, dtype: torch.dtype) -> None:
    augment = _preset(name)
    assert isinstance(augment, BatchAugment)
    x = _images(16).to(dtype)
    out = augment(x)
    assert out.shape == x.shape and out.dtype == dtype
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("shape", [(4, 3, 28, 28), (4, 1, 32, 24)])
def test_strong_handles_colour_and_non_square(shape: tuple[int, int, int, int]) -> None:
    x = _images(*shape)
    out = _preset("strong")(x)
    assert out.shape == x.shape and out.min() >= 0.0 and out.max() <= 1.0


def test_none_is_exact_identity() -> None:
    x = _images()
    assert torch.equal(_preset("none")(x), x)


@pytest.mark.parametrize("op", OPS)
def test_op_on_changes_every_image(op: str) -> None:
    x = _images()
    changed = (BatchAugment(**OPS[op])(x) != x).flatten(1).any(1)
    assert changed.all()


@pytest.mark.parametrize("op", OPS)
def test_op_off_changes_nothing(op: str) -> None:
    x = _images()
    kwargs = {k: (0.0 if k.endswith("_p") else v) for k, v in OPS[op].items()}
    assert torch.equal(BatchAugment(**kwargs)(x), x)


@pytest.mark.parametrize("op", OPS)
def test_identical_images_get_different_parameters(op: str) -> None:
    copies = _images(1).expand(8, -1, -1, -1).contiguous()
    kwargs = OPS[op] | ({"flip_p": 0.5} if op == "flip" else {})
    distinct = torch.unique(BatchAugment(**kwargs)(copies).flatten(1), dim=0).shape[0]
    # Flip (a coin) and downscale (3 sizes) have few outcomes; the others draw continuous parameters.
    assert distinct > 1 if op in ("flip", "downscale") else distinct == len(copies)


def test_same_seed_same_output() -> None:
    augment, x = _preset("strong"), _images(32)
    torch.manual_seed(123)
    first = augment(x)
    torch.manual_seed(123)
    assert torch.equal(augment(x), first)
    assert not torch.equal(augment(x), first)


def test_flip_mirrors_left_right() -> None:
    x = _images()
    assert torch.equal(BatchAugment(flip_p=1.0)(x), x.flip(-1))


def test_affine_border_is_not_black() -> None:
    """Zooming out and shifting must not bring in a constant border the model could key on."""
    x = torch.full((8, 1, 28, 28), 0.6)
    out = BatchAugment(affine_p=1.0, degrees=20.0, scale=(0.7, 0.8), translate=0.15)(x)
    torch.testing.assert_close(out, x)


@pytest.mark.parametrize(
    ("kwargs", "sign"),
    [
        ({"gamma": (2.0, 2.0)}, -1),
        ({"gamma": (0.5, 0.5)}, 1),
        ({"brightness": (0.2, 0.2)}, 1),
        ({"brightness": (-0.2, -0.2)}, -1),
    ],
)
def test_lighting_moves_mean_in_expected_direction(kwargs: dict[str, Any], sign: int) -> None:
    x = 0.2 + 0.6 * _images()  # mid-tones, away from clipping
    shift = BatchAugment(lighting_p=1.0, **kwargs)(x).mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))
    assert (sign * shift > 0.05).all()


def test_contrast_scales_spread_around_mean() -> None:
    x = 0.2 + 0.6 * _images()
    out = BatchAugment(lighting_p=1.0, contrast=(0.5, 0.5))(x)
    torch.testing.assert_close(out.std(dim=(1, 2, 3)), 0.5 * x.std(dim=(1, 2, 3)))
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)))


def test_erase_fills_one_rectangle() -> None:
    x = torch.zeros(16, 1, 28, 28)
    changed = BatchAugment(**OPS["erase"])(x)[:, 0] != 0
    for mask in changed:
        rows, cols = mask.nonzero(as_tuple=True)
        box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all() and box.numel() == mask.sum()
        assert mask.sum() < 0.5 * mask.numel()


@pytest.mark.parametrize("op", ["downscale", "blur"])
def test_resolution_ops_remove_high_frequencies(op: str) -> None:
    x = _images()
    assert (_high_freq_energy(BatchAugment(**OPS[op])(x)) < 0.5 * _high_freq_energy(x)).all()


def test_repr_lists_active_ops() -> None:
    assert "identity" in repr(_preset("none"))
    text = repr(_preset("strong"))
    assert all(op in text for op in OPS)
    assert "blur" not in repr(_preset("light"))


@pytest.mark.parametrize("kwargs", [{"flip_p": 1.5}, {"scale": (1.2, 0.8)}, {"gamma": (0.0, 1.0)}])
def test_invalid_arguments_fail_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BatchAugment(**kwargs)


def test_augmentation_sheet_puts_original_first() -> None:
    images = _images(3)
    grid = augmentation_sheet(_preset("strong"), images, n_variants=4)
    assert grid.shape == (3, 3 * 30 + 2, 5 * 30 + 2)  # make_grid: 2 px padding, grey -> 3 channels
    torch.testing.assert_close(grid[0, 2:30, 2:30], images[0, 0])
    torch.testing.assert_close(grid[0, 32:60, 2:30], images[1, 0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_gpu() -> None:
    x = _images(16).cuda()
    out = _preset("strong")(x)
    assert out.device == x.device and out.min() >= 0.0 and out.max() <= 1.0


def test_colour_ops_on_colour_images_and_gray_ones_untouched() -> None:
    x = _images(8, channels=3)
    saturated = BatchAugment(colour_p=1.0, saturation=(0.0, 0.0))(x)
    assert torch.allclose(saturated[:, 0], saturated[:, 1], atol=1e-5), "saturation 0: gray in every channel"
    turned = BatchAugment(colour_p=1.0, hue=0.25)(x)
    assert turned.shape == x.shape and turned.min() >= 0 and turned.max() <= 1 and not torch.equal(turned, x)
    luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    inside = (turned > 0.001) & (turned < 0.999)  # unclipped: a hue turn keeps each pixel's luma
    turned_luma = (turned * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    assert torch.allclose(turned_luma[inside.all(1)], luma[inside.all(1)], atol=1e-4)
    gray = BatchAugment(gray_p=1.0)(x)
    assert torch.equal(gray[:, 0], gray[:, 2]) and torch.allclose(gray[:, 0], luma, atol=1e-6)
    one = _images(8, channels=1)
    assert torch.equal(BatchAugment(colour_p=1.0, hue=0.2, saturation=(0.5, 1.5), gray_p=1.0)(one), one)
    with pytest.raises(ValueError, match="hue"):
        BatchAugment(hue=0.7)


def test_colour_ops_leave_a_gray_models_random_stream_as_it_was() -> None:
    """strong carries the colour ops for colour models; on a gray batch they draw nothing, so gray training
    with strong is what it was before they existed (same seed, same augmented images)."""
    preset = OmegaConf.to_container(OmegaConf.load(PRESET_DIR / "strong.yaml"))
    preset.pop("_target_")
    assert preset["colour_p"] > 0 and preset["gray_p"] > 0
    without = {
        key: value for key, value in preset.items() if key not in ("colour_p", "saturation", "hue", "gray_p")
    }
    gray = _images(16, channels=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with_colour_ops = BatchAugment(**preset)(gray)
        torch.manual_seed(0)
        before = BatchAugment(**without)(gray)
    assert torch.equal(with_colour_ops, before)
