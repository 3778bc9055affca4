"""Grad-CAM (Selvaraju et al., 2017): does the model look at the mouth and nose?

The last feature maps of these 28 px networks are 2x2 to 4x4, too coarse to say where the model looks,
so the maps are taken at an intermediate stage of ``feature_info`` (7x7 by default, see ``default_layer``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from facemask.data.folder import CLASSES
from facemask.decision import is_mask
from facemask.evaluation.figures import picture
from facemask.models.layers import feature_map_size


def default_layer(net: nn.Module, image_size: int = 28, min_size: int = 7) -> nn.Module:
    """The last stage of ``net.feature_info`` whose map is still at least ``min_size`` x ``min_size``.

    At 28 px that is the last stage at reduction <= 4 (7x7); pretrained MobileNetV2, which upsamples its
    input, says so through ``features_input_size``. ``net`` may also be a MaskClassifier.
    """
    net = getattr(net, "net", net)
    if not hasattr(net, "feature_info"):
        raise ValueError(
            f"{type(net).__name__} has no feature_info (see facemask.models.layers.FeaturesHead)"
        )
    side = net.features_input_size(image_size)
    large = [info for info in net.feature_info if feature_map_size(side, info["reduction"]) >= min_size]
    if not large:
        raise ValueError(f"no stage of net.feature_info keeps a {min_size}x{min_size} map at {image_size} px")
    return net.get_submodule(large[-1]["module"])


def grad_cam(
    model: nn.Module, images: Tensor, layer: nn.Module, target_class: int | Tensor | None = None
) -> Tensor:
    """Grad-CAM maps (N, H, W) in [0, 1] at the input resolution, for ``target_class`` (default: predicted).

    ``model(images)`` must give logits and run ``layer``. The model is put in eval mode and restored after;
    gradients are taken with ``torch.autograd.grad``, so no ``.grad`` of the model is written or changed.
    """
    captured: list[Tensor] = []

    def keep(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        captured.append(output)
        return output.clone()  # so that a later in-place op (ReLU(inplace=True)) cannot change it

    device = next(model.parameters()).device
    # Grad through the input: there is a graph even when the model's parameters are frozen.
    inputs = images.detach().to(device).requires_grad_(True)
    hook = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad(), evaluating(model):
            logits = model(inputs)
            if not captured:
                raise ValueError("layer was not run by model(images): pass a module inside the model")
            targets = logits.argmax(dim=1) if target_class is None else torch.as_tensor(target_class)
            targets = targets.to(device).expand(len(logits))
            score = logits.gather(1, targets[:, None]).sum()
            # the first run of ``layer`` sees the images themselves (flip_tta runs it again on the mirrors;
            # the averaged logits only halve the gradient, which the per-image normalisation below undoes)
            (gradients,) = torch.autograd.grad(score, captured[0])
    finally:
        hook.remove()
    activations = captured[0].detach()
    weights = gradients.mean(dim=(2, 3), keepdim=True)  # one weight per channel: its mean gradient
    cams = F.relu((weights * activations).sum(dim=1, keepdim=True))
    cams = F.interpolate(cams, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peaks = cams.amax(dim=(1, 2), keepdim=True)
    return torch.where(peaks > 0, cams / peaks.clamp(min=1e-12), 0).to(images.device)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; afterwards every submodule gets back its own train/eval mode."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


def gradcam_figure(
    images: Tensor, cams: Tensor, labels: Tensor, probs: Tensor, threshold: float = 0.5, ncols: int = 8
) -> Figure:
    """A sheet of faces with their Grad-CAM overlaid; titles "true / predicted p=P(WithMask)", red when wrong."""
    images, cams, labels, probs = (t.detach().cpu() for t in (images, cams, labels, probs))
    predicted = is_mask(probs, threshold).long()
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    figure, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols, 1.9 * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    sheet = zip(axes.flat[: len(images)], images, cams, labels, predicted, probs, strict=True)
    for ax, image, cam, label, pred, prob in sheet:
        ax.imshow(picture(image), cmap="gray", vmin=0, vmax=1)
        ax.imshow(cam.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        color = "black" if label == pred else "red"
        ax.set_title(f"{CLASSES[label]} /\n{CLASSES[pred]} p={prob:.2f}", fontsize=7, color=color)
    figure.suptitle(f"Grad-CAM; true / predicted, p = P(WithMask), threshold {threshold:g}", fontsize=8)
    figure.tight_layout()
    return figure
