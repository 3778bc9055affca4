"""Batched, on-device training augmentation for 28x28 face crops.

Every op draws its own parameters per sample as (N,) tensors from torch's global RNG on the batch's
device, so a whole batch is augmented with a handful of tensor ops (no per-sample Python loop) and
`lightning.seed_everything` makes runs reproducible. Use it from the DataModule's
`on_after_batch_transfer` hook on training batches only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.utils import make_grid

Range = tuple[float, float]
Op = Callable[[Tensor, Tensor], Tensor]


#: The ops that act on RGB batches only.
COLOUR_OPS = ("colour", "gray")
#: ITU-R BT.601 luma, PIL's convert("L") weights; and RGB -> YIQ, whose I/Q plane a hue turn rotates.
LUMA = torch.tensor([0.299, 0.587, 0.114])
YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _pair(value: Sequence[float], name: str) -> Range:
    """Read a (lo, hi) range from a tuple or a Hydra list."""
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise ValueError(f"{name}: lower bound {lo} exceeds upper bound {hi}")
    return lo, hi


def _symmetric(value: float | Sequence[float], name: str) -> Range:
    """A bare number b means the range (-b, b); a pair is used as given (e.g. to test one direction)."""
    if isinstance(value, int | float):
        return -abs(float(value)), abs(float(value))
    return _pair(value, name)


def _uniform(n: int, bounds: Range, like: Tensor) -> Tensor:
    """One value per sample, uniform in bounds, shaped (N, 1, 1, 1) to broadcast over images."""
    lo, hi = bounds
    u = torch.rand(n, device=like.device, dtype=like.dtype)
    return (lo + (hi - lo) * u).view(n, 1, 1, 1)


def _coin(n: int, p: float, like: Tensor) -> Tensor:
    """Per-sample boolean mask (N, 1, 1, 1): which samples the op is applied to."""
    return (torch.rand(n, device=like.device) < p).view(n, 1, 1, 1)


def _pixel_centres(size: int, like: Tensor) -> Tensor:
    """Pixel-centre coordinates in [-1, 1], as grid_sample sees them with align_corners=False."""
    return (2.0 * torch.arange(size, device=like.device, dtype=like.dtype) + 1.0) / size - 1.0


def _separable(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Apply per-sample linear filters along height (rows: N, H, H) and width (cols: N, W, W)."""
    return rows.unsqueeze(1) @ x @ cols.unsqueeze(1).transpose(-1, -2)


def _gaussian_matrices(sigma: Tensor, size: int, keep: Tensor) -> Tensor:
    """(N, size, size) Gaussian filters, rows renormalised at the borders (no dark edges); identity if not keep."""
    idx = torch.arange(size, device=sigma.device, dtype=sigma.dtype)
    exponent = (idx.view(-1, 1) - idx.view(1, -1)).square() * (-0.5 / sigma.square())
    kernel = exponent.clamp(min=-30.0).exp()  # e^-30 is zero for our purposes; CPU exp is slow on underflow
    kernel = kernel / kernel.sum(dim=-1, keepdim=True)
    return torch.where(keep, kernel, torch.eye(size, device=sigma.device, dtype=sigma.dtype))


@functools.lru_cache(maxsize=16)
def _resize_matrices(
    size: int, small_sizes: tuple[int, ...], device: torch.device, dtype: torch.dtype
) -> Tensor:
    """(1 + len(small_sizes), size, size): identity, then area-down-to-s-and-linear-back-up for each s.

    Built by resampling unit impulses, so it matches F.interpolate's area + bilinear exactly.
    """
    eye = torch.eye(size, device=device, dtype=dtype)
    impulses = eye.view(size, 1, size)
    filters = [eye]
    for small in small_sizes:
        down = F.interpolate(impulses, size=small, mode="area")
        filters.append(F.interpolate(down, size=size, mode="linear", align_corners=False).view(size, size).T)
    return torch.stack(filters)


class BatchAugment(nn.Module):
    """Random flip, pose, lighting, blur, resolution, occlusion and noise for a (N, C, H, W) batch in [0, 1].

    Order: geometry, lighting, blur/resolution, occlusion, noise. An op whose probability is 0 is skipped
    entirely, so with every probability at 0 the output equals the input exactly.

    Args:
        flip_p: horizontal flip; faces are left-right symmetric, the label does not change.
        affine_p: probability of the pose/framing warp below (one warp with all four parameters).
        degrees: max in-plane rotation (head roll, tilted camera); b means (-b, b), or give (lo, hi).
        scale: zoom range (lo, hi); > 1 zooms in. Face-detector boxes are loose or tight.
        translate: max shift as a fraction of the image size; detector boxes are off-centre.
        shear: max shear in degrees; a cheap stand-in for head yaw/pitch.
        lighting_p: probability of the lighting change below (gamma, contrast, brightness together).
        brightness: additive offset range; b means (-b, b). Under/over-exposed frames.
        contrast: multiplicative range around the per-image mean. Flat vs harsh lighting.
        gamma: exponent range (lo, hi); > 1 darkens mid-tones, < 1 brightens. Camera response curves.
        blur_p: Gaussian blur; out-of-focus and motion-soft frames.
        blur_sigma: per-sample blur sigma range in pixels.
        downscale_p: down-sample and up-sample back; small faces far from the camera.
        downscale_sizes: side lengths to down-sample to, one picked per sample.
        erase_p: random rectangle occlusion; hands, phones, hair, glasses in front of the face.
        erase_area: rectangle area range as a fraction of the image.
        erase_ratio: rectangle aspect-ratio (height / width) range, drawn log-uniformly.
        noise_p: additive Gaussian noise; sensor noise in low light.
        noise_std: max noise std; each sample draws its std uniformly in (0, noise_std).
    """

    def __init__(
        self,
        flip_p: float = 0.0,
        affine_p: float = 0.0,
        degrees: float | Sequence[float] = 0.0,
        scale: Sequence[float] = (1.0, 1.0),
        translate: float | Sequence[float] = 0.0,
        shear: float | Sequence[float] = 0.0,
        lighting_p: float = 0.0,
        brightness: float | Sequence[float] = 0.0,
        contrast: Sequence[float] = (1.0, 1.0),
        gamma: Sequence[float] = (1.0, 1.0),
        blur_p: float = 0.0,
        blur_sigma: Sequence[float] = (0.5, 1.2),
        downscale_p: float = 0.0,
        downscale_sizes: Sequence[int] = (14, 10, 7),
        erase_p: float = 0.0,
        erase_area: Sequence[float] = (0.05, 0.25),
        erase_ratio: Sequence[float] = (0.3, 3.3),
        noise_p: float = 0.0,
        noise_std: float = 0.05,
        colour_p: float = 0.0,
        saturation: Sequence[float] = (1.0, 1.0),
        hue: float = 0.0,
        gray_p: float = 0.0,
    ) -> None:
        super().__init__()
        self.flip_p, self.affine_p, self.lighting_p = float(flip_p), float(affine_p), float(lighting_p)
        self.blur_p, self.downscale_p = float(blur_p), float(downscale_p)
        self.erase_p, self.noise_p = float(erase_p), float(noise_p)
        self.degrees, self.shear = _symmetric(degrees, "degrees"), _symmetric(shear, "shear")
        self.scale, self.translate = _pair(scale, "scale"), _symmetric(translate, "translate")
        self.brightness, self.contrast = _symmetric(brightness, "brightness"), _pair(contrast, "contrast")
        self.gamma, self.blur_sigma = _pair(gamma, "gamma"), _pair(blur_sigma, "blur_sigma")
        self.downscale_sizes = tuple(int(s) for s in downscale_sizes)
        self.erase_area, self.erase_ratio = _pair(erase_area, "erase_area"), _pair(erase_ratio, "erase_ratio")
        self.noise_std = float(noise_std)
        self.colour_p, self.gray_p = float(colour_p), float(gray_p)
        self.saturation, self.hue = _pair(saturation, "saturation"), float(hue)
        self._check()

    def _check(self) -> None:
        """Fail at construction (i.e. at Hydra instantiate time) rather than mid-training."""
        for name, p in self._pipeline_probs().items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}_p must be in [0, 1], got {p}")
        if self.scale[0] <= 0 or self.gamma[0] <= 0 or self.blur_sigma[0] <= 0 or self.erase_ratio[0] <= 0:
            raise ValueError("scale, gamma, blur_sigma and erase_ratio must be positive")
        if self.saturation[0] < 0 or not 0.0 <= self.hue <= 0.5:
            raise ValueError("saturation must be >= 0 and hue (a fraction of a turn) in [0, 0.5]")
        if self.downscale_p > 0 and not self.downscale_sizes:
            raise ValueError("downscale_p > 0 needs at least one entry in downscale_sizes")

    def _pipeline(self) -> list[tuple[str, float, Op]]:
        """The ops in application order: geometry, lighting, blur/resolution, occlusion, noise."""
        return [
            ("flip", self.flip_p, self._flip),
            ("affine", self.affine_p, self._affine),
            ("lighting", self.lighting_p, self._lighting),
            ("colour", self.colour_p, self._colour),
            ("gray", self.gray_p, self._gray),
            ("blur", self.blur_p, self._blur),
            ("downscale", self.downscale_p, self._downscale),
            ("erase", self.erase_p, self._erase),
            ("noise", self.noise_p, self._noise),
        ]

    def _pipeline_probs(self) -> dict[str, float]:
        return {name: p for name, p, _ in self._pipeline()}

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Augment a float batch (N, C, H, W) in [0, 1]; same shape and dtype, clamped to [0, 1]. The colour
        ops skip a gray batch without drawing a coin: one preset serves gray and colour models, and a gray
        model's random stream is what it was before they existed."""
        for name, p, op in self._pipeline():
            if p > 0 and (x.shape[1] == 3 or name not in COLOUR_OPS):
                x = op(x, _coin(x.shape[0], p, x))
        return x.clamp(0.0, 1.0)

    def _flip(self, x: Tensor, mask: Tensor) -> Tensor:
        """Mirror left-right."""
        return torch.where(mask, x.flip(-1), x)

    def _affine(self, x: Tensor, mask: Tensor) -> Tensor:
        """Rotation, shear, zoom and shift in one resampling; reflected borders (black ones are a shortcut)."""
        n, _, h, w = x.shape
        angle = torch.deg2rad(_uniform(n, self.degrees, x))  # all (N, 1, 1, 1)
        shear = torch.tan(torch.deg2rad(_uniform(n, self.shear, x)))
        inv_scale = 1.0 / _uniform(n, self.scale, x)
        cos, sin = angle.cos() * inv_scale, angle.sin() * inv_scale
        # Output->input sampling map (1/s) R(angle) [[1, shear], [0, 1]] + shift in grid_sample's [-1, 1]
        # coordinates, written out element-wise (cheaper than affine_grid). Last dim is (x, y).
        step_x = torch.cat([cos, sin], dim=-1)  # where the input moves per unit step along output x
        step_y = torch.cat([cos * shear - sin, sin * shear + cos], dim=-1)
        shift = 2.0 * torch.cat([_uniform(n, self.translate, x), _uniform(n, self.translate, x)], dim=-1)
        cols, rows = _pixel_centres(w, x).view(1, 1, w, 1), _pixel_centres(h, x).view(1, h, 1, 1)
        grid = cols * step_x + (rows * step_y + shift)  # (N, H, W, 2); bracket keeps the big tensor ops few
        warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        return torch.where(mask, warped, x)

    def _lighting(self, x: Tensor, mask: Tensor) -> Tensor:
        """Gamma, then contrast around the image mean, then brightness; clipped like a saturated sensor."""
        n = x.shape[0]
        y = x.clamp(0.0, 1.0).pow(_uniform(n, self.gamma, x))
        mean = y.mean(dim=(1, 2, 3), keepdim=True)
        y = (y - mean) * _uniform(n, self.contrast, x) + mean + _uniform(n, self.brightness, x)
        return torch.where(mask, y.clamp(0.0, 1.0), x)

    def _colour(self, x: Tensor, mask: Tensor) -> Tensor:
        """Saturation around each pixel's luma, then a hue turn of up to ``hue`` of a circle (a rotation of the
        chroma plane in YIQ); colour images only (a gray batch passes unchanged)."""
        if x.shape[1] != 3:
            return x
        n = x.shape[0]
        luma = (x * LUMA.to(x).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
        y = luma + (x - luma) * _uniform(n, self.saturation, x)
        turn = _uniform(n, (-self.hue, self.hue), x).view(n) * (2 * math.pi)
        cos, sin, one, zero = turn.cos(), turn.sin(), torch.ones_like(turn), torch.zeros_like(turn)
        rotation = torch.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], dim=1).view(n, 3, 3)
        yiq = YIQ.to(x)
        matrices = torch.linalg.inv(yiq) @ rotation @ yiq  # (N, 3, 3): RGB -> RGB
        y = torch.einsum("nij,njhw->nihw", matrices, y)
        return torch.where(mask, y.clamp(0.0, 1.0), x)

    def _gray(self, x: Tensor, mask: Tensor) -> Tensor:
        """The image as a gray camera gives it, in every channel: a colour model must still work there."""
        if x.shape[1] != 3:
            return x
        luma = (x * LUMA.to(x).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
        return torch.where(mask, luma.expand_as(x), x)

    # Blur and down/up-sampling are separable linear filters: each sample gets an HxH and a WxW matrix
    # (identity where the op is off), applied with two batched matmuls instead of per-sample convolutions.

    def _blur(self, x: Tensor, mask: Tensor) -> Tensor:
        """Gaussian blur with a per-sample sigma."""
        n, _, h, w = x.shape
        sigma = _uniform(n, self.blur_sigma, x).view(n, 1, 1)
        keep = mask.view(n, 1, 1)
        rows = _gaussian_matrices(sigma, h, keep)
        cols = rows if w == h else _gaussian_matrices(sigma, w, keep)
        return _separable(x, rows, cols)

    def _downscale(self, x: Tensor, mask: Tensor) -> Tensor:
        """Area down-sampling to a per-sample size, then bilinear back up to the input size."""
        n, _, h, w = x.shape
        choice = torch.randint(1, len(self.downscale_sizes) + 1, (n,), device=x.device) * mask.flatten()
        widths = tuple(max(1, round(size * w / h)) for size in self.downscale_sizes)
        rows = _resize_matrices(h, self.downscale_sizes, x.device, x.dtype)[choice]  # index 0: identity
        cols = _resize_matrices(w, widths, x.device, x.dtype)[choice]
        return _separable(x, rows, cols)

    def _erase(self, x: Tensor, mask: Tensor) -> Tensor:
        """One rectangle per sample, found by comparing coordinate grids, filled with flat grey or noise."""
        n, _, h, w = x.shape
        area = _uniform(n, self.erase_area, x) * (h * w)
        ratio = torch.exp(_uniform(n, (math.log(self.erase_ratio[0]), math.log(self.erase_ratio[1])), x))
        box_h = (area * ratio).sqrt().round().clamp(1, h)
        box_w = (area / ratio).sqrt().round().clamp(1, w)
        top = (_uniform(n, (0.0, 1.0), x) * (h - box_h + 1)).floor()
        left = (_uniform(n, (0.0, 1.0), x) * (w - box_w + 1)).floor()
        rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
        cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, 1, w)
        in_rows = mask & (rows >= top) & (rows < top + box_h)  # (N, 1, H, 1)
        in_cols = (cols >= left) & (cols < left + box_w)  # (N, 1, 1, W)
        fill = torch.where(_coin(n, 0.5, x), torch.rand_like(x), _uniform(n, (0.0, 1.0), x))
        return torch.where(in_rows & in_cols, fill, x)

    def _noise(self, x: Tensor, mask: Tensor) -> Tensor:
        """Additive Gaussian noise with a per-sample std."""
        std = _uniform(x.shape[0], (0.0, self.noise_std), x) * mask  # std 0 leaves a sample unchanged
        return x + torch.randn_like(x) * std

    def extra_repr(self) -> str:
        """List only the active ops with their settings, so logs show what a preset really does."""
        params = {
            "flip": {},
            "affine": {
                "degrees": self.degrees,
                "scale": self.scale,
                "translate": self.translate,
                "shear": self.shear,
            },
            "lighting": {"brightness": self.brightness, "contrast": self.contrast, "gamma": self.gamma},
            "blur": {"sigma": self.blur_sigma},
            "downscale": {"sizes": self.downscale_sizes},
            "erase": {"area": self.erase_area, "ratio": self.erase_ratio},
            "noise": {"std": self.noise_std},
            "colour": {"saturation": self.saturation, "hue": self.hue},
            "gray": {},
        }
        active = [
            f"{name}(p={p}" + "".join(f", {k}={v}" for k, v in params[name].items()) + ")"
            for name, p in self._pipeline_probs().items()
            if p > 0
        ]
        return ", ".join(active) or "identity"


@torch.no_grad()
def augmentation_sheet(augment: BatchAugment, images: Tensor, n_variants: int = 8) -> Tensor:
    """Grid with one row per input image: the original, then `n_variants` augmented copies.

    Looking at it is the quickest way to judge whether a preset is realistic; save it with
    `torchvision.utils.save_image` or log it to TensorBoard.
    """
    n, c, h, w = images.shape
    variants = augment(images.repeat_interleave(n_variants, dim=0)).view(n, n_variants, c, h, w)
    rows = torch.cat([images.unsqueeze(1), variants], dim=1).flatten(0, 1)
    return make_grid(rows, nrow=n_variants + 1, padding=2, pad_value=1.0)
