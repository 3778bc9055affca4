"""Hard negatives: a hand, a scarf or a beard over the mouth of an unmasked face is not a mask.

A model that learnt "something covers the mouth" instead of "a mask" says mask to these. The report
draws each occluder over Test's WithoutMask faces at five sizes and gives the false-mask rate (the share
called WithMask at the operating threshold). Deterministic: the beard's texture has its own seeded generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from facemask.decision import is_mask
from facemask.evaluation.batches import predict_in_batches
from facemask.evaluation.robustness import examples_figure, save_figure
from facemask.evaluation.tables import markdown_table, write_csv

#: How far up the face each occluder reaches from the chin, as a fraction of the image height (s1..s5).
COVERAGE = (0.1, 0.15, 0.2, 0.25, 0.3)
#: The chin line in the dataset's head-and-shoulders framing (the mouth is at about 70% of the height).
CHIN = 0.82


def _lower_face(images: Tensor, coverage: float) -> Tensor:
    """Boolean (1, 1, H, W): an ellipse over mouth and chin whose top is ``coverage`` above the chin line."""
    h, w = images.shape[-2:]
    rows = torch.arange(h, device=images.device).view(-1, 1) + 0.5
    cols = torch.arange(w, device=images.device).view(1, -1) + 0.5
    chin, radius_y, radius_x = CHIN * h, coverage * h, 0.32 * w
    inside = ((rows - chin) / radius_y) ** 2 + ((cols - w / 2) / radius_x) ** 2 <= 1
    return inside.view(1, 1, h, w)


def hand(images: Tensor, coverage: float) -> Tensor:
    """A hand: the face's own brightness (skin) with the shading of fingers."""
    h, w = images.shape[-2:]
    skin = images[..., h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].mean(dim=(-2, -1), keepdim=True)
    fingers = 0.06 * torch.cos(2 * math.pi * torch.arange(w, device=images.device) / (w / 5)).view(1, 1, 1, w)
    return torch.where(_lower_face(images, coverage), (skin + fingers).clamp(0, 1), images)


def scarf(images: Tensor, coverage: float) -> Tensor:
    """A patterned scarf pulled up over the mouth: diagonal stripes across the full width."""
    h, w = images.shape[-2:]
    rows = torch.arange(h, device=images.device).view(-1, 1)
    cols = torch.arange(w, device=images.device).view(1, -1)
    stripes = torch.where(((rows + cols) // 3) % 2 == 0, 0.25, 0.6).to(images.dtype).view(1, 1, h, w)
    below = (rows >= round((CHIN - coverage) * h)).view(1, 1, h, 1)
    return torch.where(below.expand_as(images), stripes.expand_as(images), images)


def beard(images: Tensor, coverage: float) -> Tensor:
    """A dark beard: mouth and chin darkened, with a fixed hair-like texture."""
    generator = torch.Generator().manual_seed(0)
    texture = torch.rand(images.shape[-2:], generator=generator).to(images.device)
    darker = (images * 0.35 + 0.08 * texture).clamp(0, 1)
    return torch.where(_lower_face(images, coverage), darker, images)


OCCLUDERS: dict[str, Callable[[Tensor, float], Tensor]] = {"hand": hand, "scarf": scarf, "beard": beard}


def hard_negative_report(
    predict: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor, out_dir: Path, threshold: float
) -> list[dict[str, Any]]:
    """False-mask rate of WithoutMask faces, clean and under each occluder at s1..s5; writes
    hard_negatives.csv, .md and hard_negatives_examples.png to ``out_dir``."""
    faces = images[labels == 0]

    def rate(batch: Tensor) -> float:
        return float(is_mask(predict_in_batches(predict, batch), threshold).float().mean())

    rows = [
        {"occluder": "none", "severity": 0, "coverage": 0.0, "false_mask_rate": rate(faces), "n": len(faces)}
    ]
    sheets = {}
    for name, occlude in OCCLUDERS.items():
        views = [faces[:2]]
        for severity, coverage in enumerate(COVERAGE, start=1):
            occluded = occlude(faces, coverage)
            views.append(occluded[:2])
            rows.append(
                {
                    "occluder": name,
                    "severity": severity,
                    "coverage": coverage,
                    "false_mask_rate": rate(occluded),
                    "n": len(faces),
                }
            )
        sheets[name] = torch.stack(views, dim=1).cpu()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / "hard_negatives.csv", rows)
    (out_dir / "hard_negatives.md").write_text(hard_negative_markdown(rows))
    save_figure(
        examples_figure(sheets, ["WithoutMask", "WithoutMask"]), out_dir / "hard_negatives_examples.png"
    )
    return rows


def hard_negative_markdown(rows: list[dict[str, Any]]) -> str:
    table = [
        {
            "occluder": name,
            **{f"s{row['severity']}": row["false_mask_rate"] for row in rows if row["occluder"] == name},
        }
        for name in OCCLUDERS
    ]
    return (
        f"# Hard negatives\n\nFalse-mask rate (WithoutMask faces called WithMask) on {rows[0]['n']} unmasked Test "
        f"faces; without occluder **{rows[0]['false_mask_rate']:.4f}**. Coverage s1..s5: "
        + ", ".join(f"{c:g}" for c in COVERAGE)
        + " of the image height above the chin.\n\n"
        + markdown_table(table, ["occluder", *(f"s{s}" for s in range(1, 6))])
    )
