"""Grad-CAM: the right layer per network, maps where the evidence is, a model left as it was, the sheet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from facemask import runs
from facemask.evaluation.gradcam import default_layer, grad_cam, gradcam_figure
from facemask.models import mobilenet
from facemask.models.layers import FeaturesHead, stage_info
from facemask.models.mobilenet import MobileNetV2Lite
from facemask.models.vgg import MiniVGG
from facemask.module import MaskClassifier
from tests.synthetic import face

CONFIG_DIR = Path(runs.CONFIG_DIR) / "model"
MODEL_CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tensors this small only lose from threading, and on a busy CPU two threads can be 50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_faces(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 1, 28, 28) in [0, 1], alternately without and with mask (a bright band over the lower half)."""
    rng = np.random.default_rng(seed)
    labels = torch.arange(n) % 2
    images = [torch.from_numpy(face(bool(label), rng)) for label in labels.tolist()]
    return torch.stack(images).float().div(255)[:, None], labels


class BandDetector(FeaturesHead):
    """A hand-set net: channel 0 fires on bright pixels (the mask band), channel 1 on the others.

    WithMask's logit is the mean of channel 0 minus that of channel 1, WithoutMask's the opposite, so
    Grad-CAM for WithMask must light up the band and for WithoutMask everything but the band.
    """

    def __init__(self) -> None:
        super().__init__()
        blur = torch.full((1, 3, 3), 1 / 9)
        conv = nn.Conv2d(1, 2, kernel_size=3, padding=1)
        linear = nn.Linear(2, 2)
        with torch.no_grad():
            conv.weight.copy_(torch.stack([blur, -blur]))
            conv.bias.copy_(torch.tensor([-0.2, 0.2]))  # inputs arrive normalised to [-1, 1]
            linear.weight.copy_(torch.tensor([[-1.0, 1.0], [1.0, -1.0]]))
            linear.bias.copy_(torch.tensor([-0.2, 0.2]))  # the band covers only a third of the face
        self.features = nn.Sequential(conv, nn.ReLU(inplace=True), nn.AvgPool2d(4))  # 28 -> 7
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)
        self.num_features = self.head_hidden_size = 2
        self.feature_info = stage_info(self.features, in_chans=1)


def small_vgg() -> MaskClassifier:
    torch.manual_seed(0)
    return MaskClassifier(MiniVGG(layers=[8, "M", 16, "M", 16, "M", 16, "M"], fc=[32], dropout=0.0))


def lower_half_share(cams: torch.Tensor) -> torch.Tensor:
    return cams[:, 14:].sum(dim=(1, 2)) / cams.sum(dim=(1, 2))


def reference_cam(net: nn.Module, x: torch.Tensor, index: int, target: torch.Tensor) -> torch.Tensor:
    """Grad-CAM at net.features[index] computed by splitting the network there, without hooks."""
    activations = net.features[: index + 1](x).detach().requires_grad_(True)
    logits = net.forward_head(net.features[index + 1 :](activations.clone()))
    (gradients,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), activations)
    cams = F.relu((gradients.mean(dim=(2, 3), keepdim=True) * activations).sum(dim=1, keepdim=True))
    cams = F.interpolate(cams, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return torch.nan_to_num(cams / cams.amax(dim=(1, 2), keepdim=True))  # all-zero maps stay zero


def pretrained_mobilenet(monkeypatch: pytest.MonkeyPatch, size: int) -> nn.Module:
    """torchvision's MobileNetV2 layout, untrained (no download), fed images upsampled to ``size``."""
    monkeypatch.setattr(
        mobilenet, "load_imagenet_features", lambda: torchvision.models.mobilenet_v2().features
    )
    return MobileNetV2Lite(pretrained=True, pretrained_size=size)


NETS = [path.stem for path in MODEL_CONFIGS] + ["pretrained_96", "pretrained_64"]


@pytest.mark.parametrize("name", NETS)
def test_default_layer_is_the_last_with_a_7x7_map(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sizes measured by a forward pass, module by module: feature_info's choice is the last at >= 7x7."""
    if name.startswith("pretrained"):
        net = pretrained_mobilenet(monkeypatch, int(name.split("_")[1])).eval()
        expected, x = {96: 12, 64: 8}[net.pretrained_size], net.to_imagenet_input(torch.zeros(1, 1, 28, 28))
    else:
        net = instantiate(OmegaConf.load(CONFIG_DIR / f"{name}.yaml").net).eval()
        expected, x = 7, torch.zeros(1, 1, 28, 28)
    sizes = []
    with torch.no_grad():
        for module in net.features:
            x = module(x)
            sizes.append(min(x.shape[-2:]))
    layer = default_layer(net)
    index = next(i for i, module in enumerate(net.features) if module is layer)
    assert sizes[index] == expected
    assert all(size < 7 for size in sizes[index + 1 :])
    assert default_layer(MaskClassifier(net)) is layer


def test_default_layer_needs_feature_info() -> None:
    with pytest.raises(ValueError, match="feature_info"):
        default_layer(nn.Sequential(nn.Conv2d(1, 2, 3)))
    with pytest.raises(ValueError, match="keeps a 7x7 map"):
        default_layer(BandDetector(), image_size=6)


def test_cam_lights_up_the_mask_band() -> None:
    model = MaskClassifier(BandDetector())
    images, labels = toy_faces(16)
    masked = images[labels == 1]
    assert torch.equal(model(images).argmax(dim=1), labels)
    layer = default_layer(model)
    assert layer is model.net.features[2]

    with_mask = grad_cam(model, masked, layer, target_class=1)
    without_mask = grad_cam(model, masked, layer, target_class=0)
    assert (lower_half_share(with_mask) > 0.95).all()
    assert (lower_half_share(without_mask) < 0.5).all()
    band = torch.zeros(28, 28, dtype=torch.bool)
    band[14:, 4:-4] = True
    assert (with_mask[:, band].sum(dim=1) / with_mask.sum(dim=(1, 2)) > 0.8).all()


def test_cam_under_flip_tta_is_the_cam_of_the_image_itself() -> None:
    plain, tta = small_vgg(), small_vgg()
    tta.hparams.flip_tta = True
    images = toy_faces(8)[0]
    layer_plain, layer_tta = default_layer(plain), default_layer(tta)
    cams = grad_cam(plain, images, layer_plain, target_class=1)
    assert torch.allclose(grad_cam(tta, images, layer_tta, target_class=1), cams, atol=1e-5)


@pytest.mark.parametrize(("make", "index"), [(BandDetector, 0), (small_vgg, 1)], ids=["band", "vgg"])
def test_cam_matches_a_split_network(make: Callable[[], nn.Module], index: int) -> None:
    """Through the hooks, the model's normalisation and a following in-place ReLU, for each target choice."""
    net = make()
    model = net if isinstance(net, MaskClassifier) else MaskClassifier(net)
    model.eval()
    images, labels = toy_faces(8)
    normalised = (images - 0.5) / 0.5
    layer = model.net.features[index]  # conv (band) or BatchNorm (vgg), followed by ReLU(inplace=True)
    predicted = model(images).argmax(dim=1)
    ones, zeros = torch.ones_like(labels), torch.zeros_like(labels)

    for target, expected in [(None, predicted), (1, ones), (0, zeros), (1 - labels, 1 - labels)]:
        cams = grad_cam(model, images, layer, target_class=target)
        torch.testing.assert_close(cams, reference_cam(model.net, normalised, index, expected))
        assert cams.amax(dim=(1, 2)).sum() >= 4  # most maps are not empty


def test_cam_follows_the_band_in_a_trained_vgg() -> None:
    model = small_vgg()
    images, labels = toy_faces(64)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(20):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    test_images, test_labels = toy_faces(16, seed=1)
    assert torch.equal(model(test_images).argmax(dim=1), test_labels)

    cams = grad_cam(model, test_images[test_labels == 1], default_layer(model))
    rows = torch.arange(28, dtype=cams.dtype)
    centre_rows = (cams.sum(dim=2) * rows).sum(dim=1) / cams.sum(dim=(1, 2))
    assert (lower_half_share(cams) > 0.6).all()
    assert (centre_rows > 14).all()
    assert (cams[:, :7].sum(dim=(1, 2)) / cams.sum(dim=(1, 2)) < 0.05).all()  # nothing on the forehead


def test_cam_leaves_the_model_as_it_was() -> None:
    model = small_vgg().train()
    model.net.head.eval()  # a mixed-mode model: each module's own mode must come back
    modes = [module.training for module in model.modules()]
    batch_norm = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    running_mean = batch_norm.running_mean.clone()
    images = toy_faces(6)[0].to(memory_format=torch.channels_last)

    cams = grad_cam(model, images, default_layer(model))
    assert cams.shape == (6, 28, 28)
    assert cams.min() >= 0
    assert torch.allclose(cams.amax(dim=(1, 2)), torch.ones(6))
    assert all(param.grad is None for param in model.parameters())
    assert all(not module._forward_hooks for module in model.modules())
    assert [module.training for module in model.modules()] == modes
    assert torch.equal(batch_norm.running_mean, running_mean)  # ran in eval mode


def test_cam_keeps_existing_gradients_and_removes_hooks_on_error() -> None:
    model = small_vgg()
    param = next(model.parameters())
    param.grad = torch.full_like(param, 3.0)
    grad_cam(model, toy_faces(2)[0], default_layer(model))
    assert torch.equal(param.grad, torch.full_like(param, 3.0))

    outside = nn.ReLU()
    with pytest.raises(ValueError, match="not run"):
        grad_cam(model, toy_faces(2)[0], outside)
    assert not outside._forward_hooks


def test_gradcam_figure() -> None:
    images = toy_faces(5)[0]
    labels = torch.tensor([0, 1, 0, 1, 1])
    probs = torch.tensor([0.1, 0.9, 0.8, 0.3, 0.97])  # the 3rd and 4th are wrong at threshold 0.5
    figure = gradcam_figure(images, torch.rand(5, 28, 28), labels, probs, ncols=4)
    assert len(figure.axes) == 8
    shown = figure.axes[:5]
    assert shown[4].get_title() == "WithMask /\nWithMask p=0.97"
    assert [ax.title.get_color() for ax in shown] == ["black", "black", "red", "red", "black"]
    assert all(len(ax.images) == 2 for ax in shown)
    assert all(not ax.images for ax in figure.axes[5:])
    plt.close(figure)
