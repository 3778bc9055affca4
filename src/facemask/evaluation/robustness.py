"""Robustness report: accuracy on Test under graded, deterministic corruptions of what a bank camera varies.

Each corruption models one thing the entrance camera changes (lighting, head pose, occlusion, resolution,
sensor noise, focus, compression) at severities 1 (mild, about what training augmentation covers) to 5
(well beyond it). Curves of accuracy against severity show where a model breaks, and which of the
things it sees it actually relies on.

Every corruption is deterministic: the random ones (``occlude_random``, ``gaussian_noise``) draw from their
own generator with a fixed seed, never the global RNG, and draw the same numbers at every severity, so
severities differ only in strength and a rerun gives the same report.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from facemask.data.folder import CLASSES
from facemask.evaluation.batches import predict_in_batches
from facemask.evaluation.calibration import operating_point
from facemask.evaluation.figures import picture
from facemask.evaluation.tables import markdown_table, write_csv

log = logging.getLogger(__name__)

#: images (N, C, H, W) in [0, 1] and a strength parameter -> corrupted images, same shape and dtype, in [0, 1].
Corruption = Callable[[Tensor, float], Tensor]

SEVERITIES = range(1, 6)
GREY = 0.5  # a flat occluder no darker or brighter than a typical face


# Lighting: exposure, contrast and camera response curves.


def brightness(images: Tensor, offset: float) -> Tensor:
    """Add ``offset`` (negative darkens): over- and under-exposed frames, clipped like a saturated sensor."""
    return (images + offset).clamp(0.0, 1.0)


def contrast(images: Tensor, factor: float) -> Tensor:
    """Scale around each image's mean: harsh (``factor`` > 1) or flat (< 1) lighting."""
    mean = images.mean(dim=(-3, -2, -1), keepdim=True)
    return ((images - mean) * factor + mean).clamp(0.0, 1.0)


def gamma(images: Tensor, exponent: float) -> Tensor:
    """Raise to ``exponent``: > 1 darkens the mid-tones, < 1 brightens them (camera response curves)."""
    return images.clamp(0.0, 1.0).pow(exponent)


# Pose: in-plane head roll, yaw/pitch (approximated by shear), which side faces the camera.


def _alternating(n: int, like: Tensor) -> Tensor:
    """+1, -1, +1, ... per image, so that both directions of a pose change are tested equally."""
    return 1.0 - 2.0 * (torch.arange(n, device=like.device) % 2).to(like.dtype)


def _warp(images: Tensor, linear: Tensor) -> Tensor:
    """Resample about the centre with per-image 2x2 maps (N, 2, 2) from output to input pixel coordinates.

    Borders are reflected, as in training: black corners would test a shortcut, not the pose.
    """
    n, _, h, w = images.shape
    half = images.new_tensor([w / 2, h / 2])
    theta = linear * half.view(1, 1, 2) / half.view(1, 2, 1)  # the same map in grid_sample's [-1, 1] units
    theta = torch.cat([theta, theta.new_zeros(n, 2, 1)], dim=2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return warped.clamp(0.0, 1.0)


def rotation(images: Tensor, degrees: float) -> Tensor:
    """Rotate by ``degrees``, clockwise and anticlockwise on alternate images: head roll, tilted camera."""
    angle = torch.deg2rad(degrees * _alternating(images.shape[0], images))
    cos, sin = angle.cos(), angle.sin()
    return _warp(images, torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2))


def shear(images: Tensor, degrees: float) -> Tensor:
    """Shear along x by ``degrees``, alternating the sign per image: a cheap stand-in for head yaw/pitch."""
    slope = math.tan(math.radians(degrees)) * _alternating(images.shape[0], images)
    ones, zeros = torch.ones_like(slope), torch.zeros_like(slope)
    return _warp(images, torch.stack([torch.stack([ones, slope], -1), torch.stack([zeros, ones], -1)], -2))


def hflip(images: Tensor, _: float) -> Tensor:
    """Mirror left-right. It has no strength: every severity is the same flip, which keeps the report a
    full corruption x severity table and draws hflip as a flat line (ideally at the clean accuracy)."""
    return images.flip(-1)


# Occlusion: what covers part of the face.


def _band(images: Tensor, centre: float, height: float, fill: float) -> Tensor:
    """Fill full-width rows ``centre`` +- ``height`` / 2 (fractions of the image height); at least one row."""
    h = images.shape[-2]
    top = round((centre - height / 2) * h)
    bottom = max(round((centre + height / 2) * h), top + 1)
    out = images.clone()
    out[..., top:bottom, :] = fill
    return out


def occlude_eyes(images: Tensor, height: float) -> Tensor:
    """A black band of ``height`` over the eyes (centred at 35% of the height): sunglasses, a cap's shadow."""
    return _band(images, 0.35, height, fill=0.0)


def occlude_mouth(images: Tensor, height: float) -> Tensor:
    """A grey band of ``height`` over mouth and chin (centred at 70% of the height): a hand, a scarf.

    This hides where a mask is, so a drop here is expected and meaningful: it shows the model looks at
    the mask. A model whose accuracy does not drop is deciding from something else (hair, eyes, framing).
    """
    return _band(images, 0.70, height, fill=GREY)


def occlude_random(images: Tensor, area: float) -> Tensor:
    """A grey square of ``area`` (fraction of the image) at a seeded random place per image: hand, phone."""
    n, _, h, w = images.shape
    side = math.sqrt(area * h * w)
    box_h, box_w = min(h, max(1, round(side))), min(w, max(1, round(side)))
    where = torch.rand(n, 2, generator=torch.Generator().manual_seed(1)).to(images.device)
    top = (where[:, 0] * (h - box_h + 1)).floor().view(n, 1, 1, 1)
    left = (where[:, 1] * (w - box_w + 1)).floor().view(n, 1, 1, 1)
    rows = torch.arange(h, device=images.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=images.device).view(1, 1, 1, w)
    inside = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
    return torch.where(inside, GREY, images)


# Resolution, sensor noise, focus and compression.


def downscale(images: Tensor, size: float) -> Tensor:
    """Area down-sampling to ``size`` px high, bilinear back up: small faces far from the camera."""
    h, w = images.shape[-2:]
    small = (int(size), max(1, round(size * w / h)))
    down = F.interpolate(images, size=small, mode="area")
    return F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False).clamp(0.0, 1.0)


def gaussian_noise(images: Tensor, std: float) -> Tensor:
    """Additive Gaussian noise of ``std`` from a seeded generator: sensor noise in low light."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(2)).to(images)
    return (images + std * noise).clamp(0.0, 1.0)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of ``sigma`` px (kernel +-3 sigma, reflected borders): out of focus, motion softness."""
    return TF.gaussian_blur(images, kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma).clamp(0.0, 1.0)


def jpeg(images: Tensor, quality: float) -> Tensor:
    """Encode every 8-bit plane as a JPEG of ``quality`` with PIL and decode it: streamed, stored frames."""
    planes = []
    for plane in (images.flatten(0, -3) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy():
        buffer = io.BytesIO()
        Image.fromarray(plane).save(buffer, format="JPEG", quality=int(quality))
        planes.append(np.asarray(Image.open(buffer)))
    return (torch.from_numpy(np.stack(planes)).view(images.shape).to(images) / 255).clamp(0.0, 1.0)


#: name -> (family, corruption, its parameter at severities 1..5). Severity 1 to 2 is about the strength
#: of the training augmentation ("strong" preset); severities 4 and 5 are well beyond it.
CORRUPTIONS: dict[str, tuple[str, Corruption, tuple[float, ...]]] = {
    "brightness_up": ("lighting", brightness, (0.1, 0.2, 0.3, 0.4, 0.5)),
    "brightness_down": ("lighting", brightness, (-0.1, -0.2, -0.3, -0.4, -0.5)),
    "contrast_up": ("lighting", contrast, (1.25, 1.5, 2.0, 2.5, 3.0)),
    "contrast_down": ("lighting", contrast, (0.8, 0.6, 0.4, 0.25, 0.1)),
    "gamma_up": ("lighting", gamma, (1.25, 1.6, 2.0, 2.5, 3.0)),
    "gamma_down": ("lighting", gamma, (0.8, 0.6, 0.45, 0.35, 0.25)),
    "rotation": ("pose", rotation, (10, 20, 30, 45, 60)),
    "shear": ("pose", shear, (8, 16, 24, 32, 40)),
    "hflip": ("pose", hflip, (1, 1, 1, 1, 1)),
    "occlude_eyes": ("occlusion", occlude_eyes, (0.04, 0.08, 0.12, 0.16, 0.2)),
    "occlude_mouth": ("occlusion", occlude_mouth, (0.06, 0.12, 0.18, 0.24, 0.3)),
    "occlude_random": ("occlusion", occlude_random, (0.05, 0.1, 0.15, 0.2, 0.3)),
    "downscale": ("resolution", downscale, (20, 14, 10, 7, 5)),
    "gaussian_noise": ("noise", gaussian_noise, (0.03, 0.06, 0.1, 0.15, 0.2)),
    "gaussian_blur": ("blur", gaussian_blur, (0.5, 0.8, 1.2, 1.6, 2.0)),
    "jpeg": ("compression", jpeg, (50, 30, 20, 10, 5)),
}


def corrupt(images: Tensor, name: str, severity: int) -> Tensor:
    """``images`` (N, C, H, W) in [0, 1] under corruption ``name`` at ``severity`` 1..5; 0 returns them as is."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in range(6):
        raise ValueError(f"severity must be 0 (clean) to 5, got {severity}")
    if severity == 0:
        return images
    _, corruption, params = CORRUPTIONS[name]
    return corruption(images, params[severity - 1])


# The report.


@torch.no_grad()
def _scores(probs: Tensor, labels: Tensor, threshold: float) -> dict[str, float | int]:
    """Accuracy, precision and recall of WithMask at ``threshold``, as the evaluation reports them."""
    scores = operating_point(probs, labels.cpu(), threshold)
    return {
        "acc": scores["acc"],
        "precision": scores["precision"],
        "recall": scores["recall"],
        "n": len(labels),
    }


def _example_indices(labels: Tensor) -> list[int]:
    """The first WithMask and the first WithoutMask image (whichever exist): the faces on the sheet."""
    return [int(hits[0]) for cls in (1, 0) if len(hits := (labels == cls).nonzero().flatten())]


def robustness_report(
    predict: Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    out_dir: Path,
    threshold: float = 0.5,
    corruptions: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate ``predict`` clean and under every corruption at severities 1..5; write the report to ``out_dir``.

    ``predict`` maps images (N, 1, H, W) in [0, 1] to P(WithMask) (N,). Returns one row per (corruption,
    severity), the clean one first: corruption, family, severity, param, acc, precision, recall, n.
    Writes robustness.csv, robustness.md, robustness.png (curves) and robustness_examples.png (a face sheet).
    """
    names = list(CORRUPTIONS if corruptions is None else corruptions)
    if unknown := [name for name in names if name not in CORRUPTIONS]:
        raise ValueError(f"unknown corruptions {unknown}; known: {', '.join(CORRUPTIONS)}")
    examples = _example_indices(labels)
    clean = _scores(predict_in_batches(predict, images), labels, threshold)
    rows = [{"corruption": "clean", "family": "clean", "severity": 0, "param": None, **clean}]
    sheets = {}
    for done, name in enumerate(names, start=1):
        corrupted_rows, sheets[name] = _evaluate(predict, images, labels, name, threshold, examples)
        rows += corrupted_rows
        accs = " ".join(f"{row['acc']:.3f}" for row in corrupted_rows)
        log.info("robustness %d/%d %s: acc %s at severities 1-5", done, len(names), name, accs)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / "robustness.csv", rows)
    (out_dir / "robustness.md").write_text(robustness_markdown(rows))
    save_figure(robustness_figure(rows), out_dir / "robustness.png")
    save_figure(
        examples_figure(sheets, [CLASSES[int(labels[i])] for i in examples]),
        out_dir / "robustness_examples.png",
    )
    return rows


def _evaluate(
    predict: Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    name: str,
    threshold: float,
    examples: list[int],
) -> tuple[list[dict[str, Any]], Tensor]:
    """Rows for one corruption at severities 1..5, and its example faces (examples, 6 severities, C, H, W)."""
    family, _, params = CORRUPTIONS[name]
    rows, views = [], [images[examples]]
    for severity in SEVERITIES:
        corrupted = corrupt(images, name, severity)
        views.append(corrupted[examples])
        scores = _scores(predict_in_batches(predict, corrupted), labels, threshold)
        rows.append(
            {
                "corruption": name,
                "family": family,
                "severity": severity,
                "param": params[severity - 1],
                **scores,
            }
        )
    return rows, torch.stack(views, dim=1).cpu()


def _by_corruption(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Corrupted rows grouped by corruption name, in report order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["severity"] > 0:
            groups.setdefault(row["corruption"], []).append(row)
    return groups


def _clean_acc(rows: Sequence[dict[str, Any]]) -> float:
    return next(row["acc"] for row in rows if row["severity"] == 0)


def robustness_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """One table row per corruption with its accuracy at severities 1..5; clean and severity-3 summary lines."""
    table = [
        {
            "corruption": name,
            "family": group[0]["family"],
            "param (s1..s5)": ", ".join(f"{row['param']:g}" for row in group),
            **{f"s{row['severity']}": row["acc"] for row in group},
        }
        for name, group in _by_corruption(rows).items()
    ]
    columns = ["corruption", "family", "param (s1..s5)", *(f"s{s}" for s in SEVERITIES)]
    at3 = {row["corruption"]: row["acc"] for row in rows if row["severity"] == 3}
    worst = min(at3, key=at3.get)
    return (
        f"# Robustness\n\nAccuracy on {rows[0]['n']} images; clean accuracy **{_clean_acc(rows):.4f}**.\n\n"
        + markdown_table(table, columns)
        + f"\nSeverity 3: worst `{worst}` {at3[worst]:.4f}, mean {sum(at3.values()) / len(at3):.4f}"
        + f" over {len(at3)} corruptions.\n\n`occlude_mouth` hides where a mask is: a drop there is expected"
        + " and shows that the model looks at the mask.\n"
    )


def robustness_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """Accuracy against severity, one panel per family, one line per corruption; clean accuracy dashed."""
    groups, clean = _by_corruption(rows), _clean_acc(rows)
    families = list(dict.fromkeys(group[0]["family"] for group in groups.values()))
    ncols = min(4, len(families))
    nrows = math.ceil(len(families) / ncols)
    figure, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.9 * nrows), sharey=True, squeeze=False)
    for ax, family in zip(axes.flat, families, strict=False):
        for name, group in groups.items():
            if group[0]["family"] == family:
                ax.plot([0, *SEVERITIES], [clean, *(row["acc"] for row in group)], marker=".", label=name)
        ax.axhline(clean, linestyle="--", color="grey", label="clean")
        ax.set(title=family, xlabel="severity", xticks=range(6), ylim=(0.0, 1.02))
        ax.legend(fontsize="small", loc="lower left")
    for ax in axes.flat[len(families) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    figure.tight_layout()
    return figure


def examples_figure(sheets: dict[str, Tensor], titles: Sequence[str], pad: int = 2) -> Figure:
    """One panel per example face: a row per corruption, columns clean then severities 1..5."""
    names = list(sheets)
    h, w = next(iter(sheets.values())).shape[-2:]
    figure, axes = plt.subplots(
        1, len(titles), figsize=(0.45 * 6 * len(titles) + 1.5, 0.45 * len(names) + 0.8), squeeze=False
    )
    for k, (ax, title) in enumerate(zip(axes[0], titles, strict=True)):
        tiles = torch.cat([sheets[name][k] for name in names])  # (rows x 6, C, H, W)
        # gray tiles come back as 3 equal channels
        grid = make_grid(tiles, nrow=6, padding=pad, pad_value=1.0)
        ax.imshow(picture(grid), vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([pad + (w + pad) * col + w / 2 for col in range(6)], ["clean", *map(str, SEVERITIES)])
        ax.set_yticks([pad + (h + pad) * row + h / 2 for row in range(len(names))], names if k == 0 else [])
        ax.tick_params(length=0)
        ax.set_title(title)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
