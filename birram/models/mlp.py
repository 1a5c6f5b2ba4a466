"""Fully connected building blocks and the plain classifier used by most methods."""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(sizes: list[int], final_activation: bool = True) -> nn.Sequential:
    """Linear layers with ReLU between them (and after the last one if ``final_activation``)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if final_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Classifier(nn.Module):
    """An optional frozen feature extractor, an MLP body and one linear output layer.

    ``features(x)`` gives the body's top hidden layer (used by iCaRL and LwF-style heads);
    ``forward(x)`` gives the logits for every output unit (masking is the caller's job).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_outputs: int,
        hidden: list[int],
        extractor: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        n_in = extractor_output_size(extractor, input_shape)
        self.body = mlp([n_in, *hidden]) if hidden else nn.Identity()
        self.head = nn.Linear(hidden[-1] if hidden else n_in, n_outputs)

    def flat_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.extractor is not None:
            with torch.no_grad():
                x = self.extractor(x)
        return x.flatten(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.flat_input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def extractor_output_size(extractor: nn.Module | None, input_shape: tuple[int, ...]) -> int:
    """Number of features the extractor hands on (the flattened input without one)."""
    if extractor is None:
        return math.prod(input_shape)
    with torch.no_grad():
        was_training = extractor.training
        extractor.eval()
        out = extractor(torch.zeros(1, *input_shape))
        extractor.train(was_training)
    return out[0].numel()
