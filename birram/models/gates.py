"""Linear layers whose units are switched on or off by a fixed, context-specific binary mask.

Used in the decoder for "gating based on internal context" (van de Ven et al. 2020): each
context (a class, or a task) owns a random mask drawn once, which silences exactly a proportion
``gate_prop`` of the layer's units (or, with ``independent``, each unit with probability
``gate_prop``, as both reference codebases draw them). A soft context (a probability vector
over contexts) gives the probability-weighted mixture of the masks.
"""

from __future__ import annotations

import torch
from torch import nn


def fixed_gate_masks(n_contexts: int, units: int, gate_prop: float,
                     generator: torch.Generator, independent: bool = False) -> torch.Tensor:
    """``[n_contexts, units]`` float masks, each with exactly ``round(gate_prop * units)`` zeros;
    with ``independent``, each unit is off with probability ``gate_prop`` (a binomial count:
    ``np.random.choice([0, 1], p=[p, 1 - p])`` in the references' ``fc_layer_fixed_gates``)."""
    if independent:
        return (torch.rand(n_contexts, units, generator=generator) >= gate_prop).float()
    n_off = round(gate_prop * units)
    masks = torch.ones(n_contexts, units)
    for c in range(n_contexts):  # once, at model construction
        masks[c, torch.randperm(units, generator=generator)[:n_off]] = 0.0
    return masks


class GatedLinear(nn.Module):
    """``linear(x) * (context_weights @ masks)``; rows of ``context_weights`` sum to one."""

    def __init__(self, n_in: int, n_out: int, n_contexts: int, gate_prop: float,
                 generator: torch.Generator, independent: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        # A buffer: saved with the model, moved with it, never trained.
        self.register_buffer("masks", fixed_gate_masks(n_contexts, n_out, gate_prop, generator,
                                                       independent))

    @property
    def n_contexts(self) -> int:
        return self.masks.shape[0]

    def forward(self, x: torch.Tensor, context_weights: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * (context_weights @ self.masks)
