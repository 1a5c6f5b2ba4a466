"""A small in-test cell model with programming noise and drift, and layer builders."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from birram.hardware.cells import LevelTable
from birram.hardware.chip import ChipConfig
from birram.hardware.crossbar import Chip, CrossbarLinear
from birram.hardware.ideal_cells import IdealCells


class NoisyCells:
    """Evenly spaced levels, log-normal programming noise, power-law drift ``(1 + t)^-nu``,
    write energy ``(1 + level)`` pJ."""

    def __init__(self, n_levels: int = 8, g_min_s: float = 1e-6, g_max_s: float = 1e-4,
                 program_sigma: float = 0.05, read_noise_sigma: float = 0.0,
                 drift_nu: float = 0.0) -> None:
        g = np.linspace(g_min_s, g_max_s, n_levels)
        self.levels = LevelTable(np.zeros(n_levels), g[:, None], (1 + np.arange(n_levels)) * 1e-12,
                                 0.2, "noisy-test")
        self.read_noise_sigma = read_noise_sigma
        self.program_sigma, self.drift_nu = program_sigma, drift_nu
        self._g = torch.from_numpy(g)

    def program(self, level: Tensor, generator: object) -> Tensor:
        assert isinstance(generator, torch.Generator)
        noise = torch.randn(level.shape, generator=generator, dtype=torch.float64)
        return self._g[level] * torch.exp(self.program_sigma * noise)

    def drift(self, g_s: Tensor, level: Tensor, t_s: float, temp_k: float) -> Tensor:
        return g_s * (1.0 + t_s) ** (-self.drift_nu)

    def write_energy(self, level: Tensor) -> Tensor:
        return (1.0 + level.to(torch.float64)) * 1e-12


def ideal_config(**changes: object) -> ChipConfig:
    base = ChipConfig(cells="ideal", n_levels=None, dac_bits=None, adc_bits=None,
                      read_noise=False)
    return base.replace(**changes) if changes else base


def layer(n_in: int, n_out: int, config: ChipConfig, cells: object | None = None,
          seed: int = 0, bias: bool = True) -> CrossbarLinear:
    """A programmed analog crossbar layer holding a random ``nn.Linear``'s weights."""
    torch.manual_seed(seed)
    linear = nn.Linear(n_in, n_out, bias=bias)
    cells = cells if cells is not None else IdealCells(n_levels=config.n_levels)
    xbar = CrossbarLinear(linear, Chip(config, cells))  # type: ignore[arg-type]
    xbar.program()
    xbar.set_mode("analog")
    return xbar
