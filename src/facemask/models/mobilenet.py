"""MobileNetV2Lite: MobileNetV2 (Sandler et al., 2018) for 28x28 grey images.

By default a small MobileNetV2 trained from scratch, built like torchvision's from a list of
[t, c, n, s] inverted-residual settings. With pretrained=True it instead reuses torchvision's
ImageNet MobileNetV2 features, adapting the input (upsampled, grey->RGB, ImageNet-normalised).
"""

from collections.abc import Sequence
from pathlib import Path
from pickle import UnpicklingError
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from facemask.errors import FacemaskError
from facemask.models.layers import FeaturesHead, init_weights, make_divisible, stage_info

# [expansion t, output channels c, repeats n, first stride s]: torchvision's first four stages, cut to
# fit 28 px and a CPU budget: half the early widths, fewer repeats, and three stride-2 stages
# (28->14->7->4) instead of five. The first is the t=1 block, standing in for the original stride-2
# stem, so no 6x expansion ever runs at full resolution.
DEFAULT_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 8, 1, 2),
    (6, 16, 1, 2),
    (6, 32, 2, 2),
    (6, 64, 2, 1),
)
# The caller normalises inputs as (x - 0.5) / 0.5; the pretrained path undoes this to get back to [0, 1].
INPUT_MEAN = 0.5
INPUT_STD = 0.5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRETRAINED_WIDTH = 1280  # channels out of torchvision's MobileNetV2 features


def conv_bn_relu6(
    in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    """Conv, BN, ReLU6: the unit MobileNetV2 is built from."""
    conv = nn.Conv2d(
        in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=False
    )
    return nn.Sequential(conv, nn.BatchNorm2d(out_chs), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand (1x1), filter (depthwise 3x3), project (1x1, linear: ReLU would destroy the thin output).

    The residual only applies when the block keeps the shape (stride 1, same channels).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_chs * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu6(in_chs, hidden, kernel_size=1))
        layers += [
            conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_chs, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_chs),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


def make_lite_features(
    in_chans: int,
    setting: Sequence[Sequence[int]],
    width_mult: float,
    stem_width: int,
    last_channel: int,
    stem_stride: int = 1,
) -> tuple[nn.Sequential, int]:
    """Stem (stride 1: a 28 px image has no resolution to spare; 2 halves a 48-64 px face), inverted residuals,
    final 1x1 conv."""
    width = make_divisible(stem_width * width_mult)
    layers: list[nn.Module] = [conv_bn_relu6(in_chans, width, stride=stem_stride)]
    for t, c, n, s in setting:
        out = make_divisible(c * width_mult)
        for i in range(n):
            layers.append(InvertedResidual(width, out, stride=s if i == 0 else 1, expand_ratio=t))
            width = out
    # Like torchvision, the last layer only widens (never shrinks) with width_mult.
    last = make_divisible(last_channel * max(1.0, width_mult))
    layers.append(conv_bn_relu6(width, last, kernel_size=1))
    return nn.Sequential(*layers), last


def load_imagenet_features() -> nn.Sequential:
    """torchvision's ImageNet MobileNetV2 features; failing to get the weights becomes one clear error."""
    weights = MobileNet_V2_Weights.IMAGENET1K_V1
    # Offline gives a URLError (an OSError); a corrupt or partial cache file any of the others.
    try:
        return mobilenet_v2(weights=weights).features
    except (OSError, RuntimeError, ValueError, EOFError, UnpicklingError) as err:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
        raise FacemaskError(
            f"Could not load the ImageNet MobileNetV2 weights ({type(err).__name__}: {err}). "
            f"They are expected at {cache} (cache set by TORCH_HOME). To fix: run once with internet access "
            f"(deleting any broken file there first), or copy {weights.url} to that path, "
            "or train from scratch with model.net.pretrained=false."
        ) from err


class MobileNetV2Lite(FeaturesHead):
    """MobileNetV2 for (N, in_chans, 28, 28) inputs, from scratch or from ImageNet weights.

    ``stem_stride`` 2 halves a 48-64 px face in the stem, at about the cost of 28 px (as vgg's).
    pretrained=True ignores width_mult, the setting, stem_width and last_channel: the ImageNet
    network is used as is, fed images upsampled to `pretrained_size` (it was trained on 224 px, and
    28 px would be cut to 1x1 by its 32x downsampling). Inputs are assumed normalised as
    (x - input_mean) / input_std by the caller and are renormalised with the ImageNet statistics.
    """

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = 2,
        width_mult: float = 1.0,
        inverted_residual_setting: Sequence[Sequence[int]] = DEFAULT_SETTING,
        stem_width: int = 8,
        last_channel: int = 256,
        dropout: float = 0.2,
        pretrained: bool = False,
        pretrained_size: int = 96,
        input_mean: float = INPUT_MEAN,
        input_std: float = INPUT_STD,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if pretrained and stem_stride != 1:
            raise FacemaskError("pretrained MobileNetV2 keeps ImageNet's stem: stem_stride must be 1")
        if pretrained and in_chans not in (1, 3):
            raise FacemaskError(
                f"pretrained MobileNetV2 needs 1 or 3 input channels, got in_chans={in_chans}"
            )
        self.pretrained = pretrained
        self.pretrained_size = pretrained_size
        self.input_mean = input_mean
        self.input_std = input_std
        if pretrained:
            self.features, width = load_imagenet_features(), PRETRAINED_WIDTH
        else:
            setting = inverted_residual_setting
            self.features, width = make_lite_features(
                in_chans, setting, width_mult, stem_width, last_channel, stem_stride
            )
            self.features.apply(init_weights)
        self.num_features = self.head_hidden_size = width
        # Reductions relative to the image features sees: pretrained_size px when pretrained.
        self.feature_info = stage_info(self.features, 3 if pretrained else in_chans)
        # Constants, not weights: non-persistent so checkpoints hold only what is learned.
        self.register_buffer("imagenet_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("imagenet_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_classes)
        )
        self.head.apply(init_weights)
        # channels_last: oneDNN's CPU convolutions (depthwise above all) run ~1.5x faster; results unchanged.
        self.to(memory_format=torch.channels_last)

    def to_imagenet_input(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the caller's normalisation, grey -> RGB, ImageNet-normalise and upsample."""
        x = x * self.input_std + self.input_mean
        x = x.expand(-1, 3, -1, -1)  # a no-op for 3-channel input
        x = (x - self.imagenet_mean) / self.imagenet_std
        size = (self.pretrained_size, self.pretrained_size)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def features_input_size(self, img_size: int) -> int:
        return self.pretrained_size if self.pretrained else img_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.pretrained:
            x = self.to_imagenet_input(x)
        return self.features(x)
