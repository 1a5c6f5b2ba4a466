"""Convolutional feature extractors for internal replay, and the wrapper that freezes one."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


class ConvExtractor(nn.Module):
    """``layers`` 3x3 conv layers with batch norm and ReLU (as the CIFAR layers of BI-R).

    The last ``reducing_layers`` (default ``layers - 1``) use stride 2 and, except for the first
    layer, double the channels: 5 layers from 16 channels map 3x32x32 to 256x2x2.

    ``last_block="linear"`` ends in a plain convolution (with bias, no batch norm, no ReLU), as
    the BI-R paper's ``ConvLayers(output="none")`` (its default ``no_fnl=True``), so internal
    replay reconstructs linear features; ``"bn-relu"`` ends like every other block.
    """

    def __init__(self, in_channels: int = 3, layers: int = 5, channels: int = 16,
                 reducing_layers: int | None = None,
                 last_block: Literal["bn-relu", "linear"] = "bn-relu") -> None:
        super().__init__()
        if last_block not in ("bn-relu", "linear"):
            raise ValueError(f"last_block={last_block!r}; allowed: bn-relu, linear")
        rl = layers - 1 if reducing_layers is None else min(reducing_layers, layers)
        self.config = {"in_channels": in_channels, "layers": layers, "channels": channels,
                       "reducing_layers": rl, "last_block": last_block}
        blocks: list[nn.Module] = []
        c_in, c_out = in_channels, channels
        for i in range(1, layers + 1):
            reducing = i > layers - rl
            if reducing and i > 1:
                c_out *= 2
            stride = 2 if reducing else 1
            if i == layers and last_block == "linear":
                blocks.append(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1))
            else:
                blocks += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1,
                                     bias=False),  # batch norm supplies the bias
                           nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        self.out_channels = c_in
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class FrozenExtractor(nn.Module):
    """A pre-trained extractor that never learns: no gradients, and batch norm always in eval.

    ``train()`` is overridden so the training loop's ``model.train()`` cannot switch batch norm
    back to updating its running statistics.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        for p in module.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenExtractor:
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(x)


def freeze(extractor: nn.Module | None) -> FrozenExtractor | None:
    if extractor is None or isinstance(extractor, FrozenExtractor):
        return extractor
    return FrozenExtractor(extractor)
