"""Mini-VGG: VGG16/VGG19 rebuilt for 28x28 grey images, narrow enough to train on a CPU.

One class serves both depths: as in torchvision and timm, the architecture is a layer list
(ints are 3x3 conv widths, "M" is a 2x2 max-pool) and ``vgg16`` / ``vgg19`` build it from theirs in ``CFGS``.
"""

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from facemask.models.layers import FeaturesHead, feature_map_size, init_weights, make_divisible, stage_info

POOL = "M"
# VGG's layouts with 1/8 of its widths and four pools, not five (28 -> 14 -> 7 -> 4 -> 2; a fifth would leave 1x1).
CFGS: dict[str, tuple[int | str, ...]] = {
    # five blocks of 2, 2, 3, 3, 3 convs: 13 conv + 3 fc
    "vgg16": (8, 8, POOL, 16, 16, POOL, 32, 32, 32, POOL, 64, 64, 64, POOL, 64, 64, 64),
    # five blocks of 2, 2, 4, 4, 4 convs: 16 conv + 3 fc
    "vgg19": (8, 8, POOL, 16, 16, POOL, 32, 32, 32, 32, POOL, 64, 64, 64, 64, POOL, 64, 64, 64, 64),
}


def make_features(
    layers: Sequence[int | str], in_chans: int, batch_norm: bool, stem_stride: int = 1
) -> nn.Sequential:
    """Stack conv(-BN)-ReLU units and max-pools from a VGG layer list; the first conv strides by
    ``stem_stride``.

    Pools use ceil_mode=True so that four of them take 28 px to 2 px (28->14->7->4->2)
    instead of flooring 7 to 3 and losing the image border.
    """
    modules: list[nn.Module] = []
    channels, stride = in_chans, stem_stride
    for layer in layers:
        if layer == POOL:
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            continue
        width = int(layer)
        # A conv bias right before BatchNorm is cancelled by the mean subtraction, so drop it.
        conv = nn.Conv2d(channels, width, kernel_size=3, stride=stride, padding=1, bias=not batch_norm)
        modules.append(conv)
        stride = 1
        if batch_norm:
            modules.append(nn.BatchNorm2d(width))
        modules.append(nn.ReLU(inplace=True))
        channels = width
    return nn.Sequential(*modules)


def make_classifier(in_features: int, fc: Sequence[int], num_classes: int, dropout: float) -> nn.Sequential:
    """VGG's fully-connected head: flatten, hidden Linear-ReLU-Dropout layers, then the logits layer."""
    modules: list[nn.Module] = [nn.Flatten()]
    for width in fc:
        modules += [nn.Linear(in_features, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        in_features = width
    modules.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*modules)


class MiniVGG(FeaturesHead):
    """VGG with ceil-mode pooling and a small fc head, for (N, in_chans, 28, 28) inputs.

    The layer list should hold four "M" pools, not VGG's five: at 28 px a fifth pool would
    leave a 1x1 map, so the last conv block works on 2x2 and feeds the classifier directly.
    img_size is only used to size the first fc layer from the number of pools; width_mult scales every
    conv width (rounded to a multiple of 4), for width sweeps. ``stem_stride`` 2 halves a larger face in the
    first conv (48 -> 24, 56 -> 28), so that 48-64 px input costs about what 28 px does.
    """

    def __init__(
        self,
        layers: Sequence[int | str],
        fc: Sequence[int] = (256, 256),
        batch_norm: bool = True,
        dropout: float = 0.5,
        in_chans: int = 1,
        num_classes: int = 2,
        img_size: int = 28,
        width_mult: float = 1.0,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        layers = [layer if layer == POOL else make_divisible(int(layer) * width_mult, 4) for layer in layers]
        self.features = make_features(layers, in_chans, batch_norm, stem_stride)
        self.feature_info = stage_info(self.features, in_chans)
        self.num_features = [int(layer) for layer in layers if layer != POOL][-1]
        side = feature_map_size(img_size, stem_stride * 2 ** sum(layer == POOL for layer in layers))
        self.head = make_classifier(self.num_features * side * side, fc, num_classes, dropout)
        self.head_hidden_size = fc[-1] if fc else self.num_features * side * side
        self.apply(init_weights)
        # channels_last: oneDNN's CPU convolutions run ~1.3x faster on it; results are unchanged.
        self.to(memory_format=torch.channels_last)


def vgg16(**kwargs: Any) -> MiniVGG:
    """Mini-VGG16: ``CFGS["vgg16"]``; keyword arguments as ``MiniVGG``'s (all but ``layers``)."""
    return MiniVGG(CFGS["vgg16"], **kwargs)


def vgg19(**kwargs: Any) -> MiniVGG:
    """Mini-VGG19: ``CFGS["vgg19"]``; keyword arguments as ``MiniVGG``'s (all but ``layers``)."""
    return MiniVGG(CFGS["vgg19"], **kwargs)
