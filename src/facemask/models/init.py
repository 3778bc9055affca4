"""Weight initialisation shared by every family, as torchvision initialises VGG and MobileNetV2."""

from torch import nn


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
