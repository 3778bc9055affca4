"""Pieces shared by every network family: weight initialisation and width scaling."""

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


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of `divisor` (as torchvision does), never dropping below 90%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded
