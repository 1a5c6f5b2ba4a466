"""One small MLP per task, side by side (the "separate networks" baseline of task-IL).

Each network predicts only its own task's output units; together they fill the whole output
layer. Their hidden layers are narrowed so that all of them together hold no more parameters
than one shared network of the configured width, as in the reference comparison (400 shared
units against 100 per network on split MNIST).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from birram.models.mlp import mlp


def mlp_parameters(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def per_network_hidden(n_in: int, hidden: list[int], n_outputs: int,
                       outputs_per_task: list[int]) -> list[int]:
    """The widest hidden layers, scaled down in proportion to ``hidden``, for which one network
    per task together has at most the parameters of one network with ``hidden``."""
    budget = mlp_parameters([n_in, *hidden, n_outputs])
    for width in range(hidden[0], 0, -1):  # once, at construction
        scaled = [max(1, round(h * width / hidden[0])) for h in hidden]
        if sum(mlp_parameters([n_in, *scaled, k]) for k in outputs_per_task) <= budget:
            return scaled
    return [1] * len(hidden)


class SeparateNetworks(nn.Module):
    """``forward(x, task)`` runs only network ``task`` (its units' scores, zeros elsewhere);
    without ``task`` every network runs, each filling its own task's output units."""

    def __init__(self, input_shape: tuple[int, ...], n_outputs: int, hidden: list[int],
                 task_outputs: list[tuple[int, ...]]) -> None:
        super().__init__()
        n_in = math.prod(input_shape)
        widths = per_network_hidden(n_in, hidden, n_outputs, [len(o) for o in task_outputs])
        self.n_outputs = n_outputs
        self.networks = nn.ModuleList(mlp([n_in, *widths, len(o)], final_activation=False)
                                      for o in task_outputs)
        for t, outputs in enumerate(task_outputs):
            self.register_buffer(f"outputs{t}", torch.tensor(outputs, dtype=torch.long))

    def outputs(self, task: int) -> torch.Tensor:
        return getattr(self, f"outputs{task}")

    def forward(self, x: torch.Tensor, task: int | None = None) -> torch.Tensor:
        x = x.flatten(1)
        scores = x.new_zeros(x.shape[0], self.n_outputs)
        tasks = range(len(self.networks)) if task is None else [task]
        for t in tasks:
            scores = scores.index_copy(1, self.outputs(t), self.networks[t](x))
        return scores
