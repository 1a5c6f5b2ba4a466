"""Ideal cells: evenly spaced levels, no programming noise, no drift, a constant write energy.

Used by the ``ideal`` chip preset and by tests, where every deviation of the analog result from
the digital one must come from the array (quantisation, converters, faults), not the device.
``n_levels=None`` gives continuous (unquantised) conductances: the crossbar then programs each
device straight to its target conductance through :meth:`IdealCells.program_conductance`.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import Tensor

from birram.hardware.cells import LevelTable

# An assumed round figure for one SET/RESET operation: RRAM write energies reported in the
# literature span roughly 0.1 pJ to tens of pJ per cell (Yu & Chen, "Emerging memory
# technologies: recent trends and prospects", IEEE Solid-State Circuits Magazine 8(2), 2016).
IDEAL_WRITE_ENERGY_J = 1e-12


class IdealCells:
    """A :class:`~birram.hardware.cells.CellModel` with exact, evenly spaced conductances."""

    def __init__(self, n_levels: int | None = 16, g_min_s: float = 1e-6, g_max_s: float = 1e-4,
                 v_read_v: float = 0.2, write_energy_j: float = IDEAL_WRITE_ENERGY_J,
                 read_noise_sigma: float = 0.0) -> None:
        if n_levels is not None and n_levels < 2:
            raise ValueError(f"n_levels={n_levels}; allowed: an integer >= 2 or None")
        if not 0.0 <= g_min_s < g_max_s:
            raise ValueError(f"need 0 <= g_min_s < g_max_s, got {g_min_s} and {g_max_s}")
        self.continuous = n_levels is None
        count = 2 if n_levels is None else n_levels  # continuous: the two ends of the range
        g = np.linspace(g_min_s, g_max_s, count)
        key = hashlib.sha256(repr(("ideal", n_levels, g_min_s, g_max_s, v_read_v,
                                   write_energy_j)).encode()).hexdigest()[:16]
        self.levels = LevelTable(
            icc_a=np.zeros(count),  # ideal cells need no compliance current
            g_samples_s=g[:, None], write_energy_j=np.full(count, write_energy_j),
            v_read_v=v_read_v, key=key)
        self.read_noise_sigma = read_noise_sigma
        self.write_energy_j = write_energy_j
        self._g = torch.from_numpy(g)

    def program(self, level: Tensor, generator: object) -> Tensor:
        return self._g.to(level.device)[level]

    def program_conductance(self, g_target_s: Tensor, generator: object) -> Tensor:
        """Continuous cells only: each device gets exactly its target conductance."""
        return g_target_s.to(torch.float64).clone()

    def drift(self, g_s: Tensor, level: Tensor, t_s: float, temp_k: float) -> Tensor:
        return g_s

    def write_energy(self, level: Tensor) -> Tensor:
        return torch.full(level.shape, self.write_energy_j, dtype=torch.float64,
                          device=level.device)
