"""XceptionLite: Xception (Chollet, 2017) scaled down for 28x28 grey images.

The layout is the original one - entry flow, middle flow, exit flow of residual blocks built
from depthwise-separable convs - with fewer channels and a stride-1 stem, so the four
downsampling blocks take 28 px to 14, 7, 4 and finally 2.
"""

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from facemask.models.layers import FeaturesHead, init_weights, make_divisible, stage_info


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 then pointwise 1x1: spatial and cross-channel mixing done separately, far cheaper."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_chs, in_chs, kernel_size=3, padding=1, groups=in_chs, bias=False)
        self.pointwise = nn.Conv2d(in_chs, out_chs, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class Block(nn.Module):
    """Xception residual block: `reps` x [ReLU, SeparableConv, BN], optional 3x3/2 max-pool, plus shortcut.

    The shortcut is a strided 1x1 conv + BN when the shape changes, identity otherwise.
    `grow_first` picks whether the first (entry flow) or last (exit flow) conv changes the width.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        reps: int,
        stride: int = 1,
        start_with_relu: bool = True,
        grow_first: bool = True,
    ) -> None:
        super().__init__()
        widths = [in_chs] + [out_chs] * reps if grow_first else [in_chs] * reps + [out_chs]
        layers: list[nn.Module] = []
        for i in range(reps):
            if i > 0 or start_with_relu:
                layers.append(nn.ReLU(inplace=i > 0))  # not in place on x: the shortcut still needs it
            layers += [SeparableConv2d(widths[i], widths[i + 1]), nn.BatchNorm2d(widths[i + 1])]
        if stride != 1:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=stride, padding=1))
        self.rep = nn.Sequential(*layers)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or in_chs != out_chs:
            self.skip = nn.Sequential(
                nn.Conv2d(in_chs, out_chs, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_chs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rep(x) + self.skip(x)


def stem(in_chans: int, widths: Sequence[int], stride: int = 1) -> list[nn.Module]:
    """Plain 3x3 conv-BN-ReLU units, the first at ``stride`` (the original's has stride 2; 28 px has none to
    spare, a 48-64 px face does)."""
    layers: list[nn.Module] = []
    for width in widths:
        conv = nn.Conv2d(in_chans, width, kernel_size=3, stride=stride, padding=1, bias=False)
        layers += [conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        in_chans, stride = width, 1
    return layers


def entry_flow(in_chs: int, widths: Sequence[int]) -> list[nn.Module]:
    """One stride-2 block per width; the first skips its leading ReLU, its input having just left one."""
    blocks: list[nn.Module] = []
    for i, width in enumerate(widths):
        blocks.append(Block(in_chs, width, reps=2, stride=2, start_with_relu=i > 0))
        in_chs = width
    return blocks


def exit_flow(in_chs: int, widths: Sequence[int]) -> list[nn.Module]:
    """A stride-2 block out to widths[0] (widening last), then SeparableConv-BN-ReLU through the rest."""
    layers: list[nn.Module] = [Block(in_chs, widths[0], reps=2, stride=2, grow_first=False)]
    for in_width, width in pairwise(widths):
        layers += [SeparableConv2d(in_width, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    return layers


class XceptionLite(FeaturesHead):
    """Scaled-down Xception for (N, in_chans, 28, 28) inputs.

    stem_widths: one stride-1 3x3 conv-BN-ReLU per width.
    entry_widths: one stride-2 block per width (the first starts without ReLU, as in the original).
    middle_repeats: identity-residual blocks of 3 separable convs at the last entry width.
    exit_widths: the exit block's output width, then one widening SeparableConv-BN-ReLU per further width.
    width_mult: scales every width (rounded to a multiple of 4), for width sweeps.
    stem_stride: 2 halves a 48-64 px face in the first conv, at about the cost of 28 px.
    """

    def __init__(
        self,
        stem_widths: Sequence[int] = (8, 16),
        entry_widths: Sequence[int] = (16, 32, 64),
        middle_repeats: int = 2,
        exit_widths: Sequence[int] = (96, 128, 192),
        dropout: float = 0.2,
        in_chans: int = 1,
        num_classes: int = 2,
        width_mult: float = 1.0,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        stem_widths, entry_widths, exit_widths = (
            [make_divisible(w * width_mult, 4) for w in widths]
            for widths in (stem_widths, entry_widths, exit_widths)
        )
        width = entry_widths[-1]
        self.features = nn.Sequential(
            *stem(in_chans, stem_widths, stem_stride),
            *entry_flow(stem_widths[-1], entry_widths),
            *[Block(width, width, reps=3) for _ in range(middle_repeats)],  # middle flow
            *exit_flow(width, exit_widths),
        )
        self.feature_info = stage_info(self.features, in_chans)
        self.num_features = self.head_hidden_size = exit_widths[-1]
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(self.num_features, num_classes),
        )
        self.apply(init_weights)
        # channels_last: oneDNN's CPU convolutions (depthwise above all) run ~1.5x faster; results unchanged.
        self.to(memory_format=torch.channels_last)
