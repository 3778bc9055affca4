"""Scoring a whole image set with a model, a batch at a time (train, evaluate and the robustness reports)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def predict_in_batches(predict: Callable[[Tensor], Tensor], images: Tensor, batch_size: int = 256) -> Tensor:
    """P(WithMask) for every image, ``batch_size`` images at a time, on the CPU."""
    return torch.cat([predict(batch).flatten().float().cpu() for batch in images.split(batch_size)])
