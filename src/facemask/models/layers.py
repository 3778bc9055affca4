"""Pieces shared by every network family: the features/head split, weight initialisation, width scaling."""

import torch
from torch import nn


class FeaturesHead(nn.Module):
    """timm's split of a classifier: ``forward_features`` (``self.features``) then ``forward_head``.

    Subclasses build ``features`` and ``head``; Grad-CAM and future backbones rely on the split.
    """

    features: nn.Module
    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def init_weights(module: nn.Module) -> None:
    """Kaiming (fan-out) convs, unit BatchNorm, N(0, 0.01) linears, zero biases; use with ``net.apply``."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0, 0.01)
    if isinstance(module, nn.Conv2d | nn.BatchNorm2d | nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of `divisor` (as torchvision does), never dropping below 90%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded
