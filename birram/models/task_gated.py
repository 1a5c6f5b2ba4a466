"""An MLP classifier whose hidden units are gated by a fixed random mask per task (XdG).

Context-dependent gating (Masse et al. 2018): every task owns, for each hidden layer, a binary
mask drawn once that silences a proportion of the layer's units, so tasks share fewer weights.
The masks are buffers: saved and restored with the model, never trained.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from birram.models.gates import fixed_gate_masks


class TaskGatedClassifier(nn.Module):
    """``forward(x, task_ids)`` gates each hidden layer with the masks of each sample's task;
    without ``task_ids`` every unit is on (what tools that know nothing of tasks see)."""

    def __init__(self, input_shape: tuple[int, ...], n_outputs: int, hidden: list[int],
                 n_tasks: int, gate_prop: float, generator: torch.Generator,
                 independent_gates: bool = False) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("task gating needs at least one hidden layer")
        sizes = [math.prod(input_shape), *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = nn.Linear(hidden[-1], n_outputs)
        for i, units in enumerate(hidden):
            self.register_buffer(f"gates{i}", fixed_gate_masks(n_tasks, units, gate_prop,
                                                               generator, independent_gates))

    def gates(self, layer: int) -> torch.Tensor:
        """``[n_tasks, units]`` masks of hidden layer ``layer`` (1: on, 0: gated off)."""
        return getattr(self, f"gates{layer}")

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)
        for i, layer in enumerate(self.hidden):
            h = layer(h)
            if task_ids is not None:
                # Gating before the ReLU: a gated unit outputs zero and passes no gradient back.
                h = h * self.gates(i)[task_ids]
            h = torch.relu(h)
        return self.head(h)
