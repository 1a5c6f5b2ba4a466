"""What a crossbar needs from a cell technology, kept apart from the array that uses it.

A cell model answers four questions: which conductance levels can a cell be programmed to (and
with which compliance current), what conductance does a cell really get when it is programmed to
a level (programming noise), how does that conductance move with time and temperature (drift,
retention), and what does a write cost in energy. The crossbar (``crossbar.py``) maps weights
onto levels and never looks inside the physics; the RRAM cell model (``rram_cells.py``) answers
from birram's own device simulator. The split follows aihwkit's separation of the conductance
converter from the noise model (Rasch et al., "A flexible and fast PyTorch toolkit for simulating
training and inference on analog crossbar arrays", AICAS 2021).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from torch import Tensor


@dataclass(frozen=True)
class LevelTable:
    """The programmable levels of one cell technology, calibrated once.

    Level 0 is the high-resistance state reached by RESET alone (``icc_a[0] == 0``); levels
    ``1 .. L-1`` are SETs under increasing compliance current, so conductance rises with level.
    """

    icc_a: np.ndarray  # [L] SET compliance current of each level (0 for the RESET level), A
    g_samples_s: np.ndarray  # [L, M] read conductance of M cells programmed to each level, S
    write_energy_j: np.ndarray  # [L] mean energy to program one cell to the level (pulses), J
    v_read_v: float  # read voltage the conductances were measured at, V
    key: str  # hash of the configuration that produced the table (its cache key)

    @property
    def n_levels(self) -> int:
        return int(self.icc_a.shape[0])

    @property
    def g_mean_s(self) -> np.ndarray:
        """[L] mean programmed conductance of each level, S."""
        return self.g_samples_s.mean(axis=1)


class CellModel(Protocol):
    """The interface every cell technology offers the crossbar."""

    levels: LevelTable
    read_noise_sigma: float  # log-normal spread of one read of a cell's current

    def program(self, level: Tensor, generator: object) -> Tensor:
        """Conductance (S, float64) of each cell just after programming it to ``level``.

        ``level`` is an int64 tensor of any shape with values in ``[0, L)``; ``generator`` is a
        ``torch.Generator`` every random draw comes from (same generator state, same result).
        """
        ...

    def drift(self, g_s: Tensor, level: Tensor, t_s: float, temp_k: float) -> Tensor:
        """Conductance after ``t_s`` seconds at ``temp_k`` kelvin since programming, from ``g_s``.

        ``t_s == 0`` returns ``g_s`` unchanged.
        """
        ...

    def write_energy(self, level: Tensor) -> Tensor:
        """Energy (J, float64) of programming each cell to ``level``."""
        ...
