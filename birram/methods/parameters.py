"""The trainable parameters of a model as one flat vector (the regularisers' working form)."""

from __future__ import annotations

import torch
from torch import nn


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def flat(params: list[nn.Parameter]) -> torch.Tensor:
    """The parameters as one vector (differentiable, so a penalty on it backpropagates)."""
    return torch.cat([p.reshape(-1) for p in params])


def flat_grad(params: list[nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in params])
