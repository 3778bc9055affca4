"""Size and cost of a network: parameters and multiply-accumulates per image."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@torch.no_grad()
def count_macs(net: nn.Module, input_size: tuple[int, ...] = (1, 1, 28, 28)) -> int:
    """MACs of one forward pass (PyTorch counts a multiply-add as two FLOPs)."""
    was_training = net.training
    net.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        net(torch.zeros(input_size, device=next(net.parameters()).device))
    net.train(was_training)
    return counter.get_total_flops() // 2
