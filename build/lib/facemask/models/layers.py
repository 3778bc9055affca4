"""Pieces shared by every network family: timm's model interface, weight initialisation, width scaling."""

import math
from collections.abc import Sequence

import torch
from torch import nn

FeatureInfo = dict[str, int | str]  # timm's: num_chs, reduction, module


class FeaturesHead(nn.Module):
    """timm's interface: ``forward_features`` (``self.features``), then ``forward_head`` (``self.head``).

    Subclasses build ``features`` and ``head`` (an nn.Sequential ending in the logits Linear) and set
    ``num_features`` (channels out of ``features``), ``head_hidden_size`` (width of the pre-logits vector) and
    ``feature_info`` (one dict per stage; ``reduction`` is relative to the image ``features`` sees, see
    ``features_input_size``). Grad-CAM picks its layer from ``feature_info``.
    """

    features: nn.Module
    head: nn.Sequential
    num_features: int
    head_hidden_size: int
    feature_info: list[FeatureInfo]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits, or with ``pre_logits`` what the final Linear gets (timm's meaning: pooled, dropout applied)."""
        # Slicing, not a separate module, keeps the state_dict keys of existing checkpoints.
        return self.head[:-1](x) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head[-1]

    def features_input_size(self, img_size: int) -> int:
        """Side of the image ``features`` sees for an ``img_size`` input: the same unless a net resizes it."""
        return img_size


def stage_info(features: nn.Sequential, in_chans: int, prefix: str = "features") -> list[FeatureInfo]:
    """timm's ``feature_info`` for ``features``: the last module of each run of modules at one reduction.

    A module downsamples by the largest stride among its convs and pools (no block here chains two strided
    layers) and outputs the channels of its last conv; tests check both against a forward pass.
    """
    reductions, channels, reduction = [], [], 1
    for module in features:
        layers = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d)]
        reduction *= max((first(m.stride) for m in layers), default=1)
        in_chans = next((m.out_channels for m in reversed(layers) if isinstance(m, nn.Conv2d)), in_chans)
        reductions.append(reduction)
        channels.append(in_chans)
    return [
        dict(num_chs=channels[i], reduction=reductions[i], module=f"{prefix}.{i}")
        for i in range(len(reductions))
        if i + 1 == len(reductions) or reductions[i + 1] != reductions[i]
    ]


def first(value: int | Sequence[int]) -> int:
    return value if isinstance(value, int) else value[0]


def feature_map_size(img_size: int, reduction: int) -> int:
    """Side of a map at ``reduction``: every downsampling here pads (ceil mode), so sides round up."""
    return math.ceil(img_size / reduction)


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
