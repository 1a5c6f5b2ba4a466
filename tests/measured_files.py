"""Directories of measured-looking sweep files, simulated on the fly: each device cycled at one
compliance level by the RRAM simulator and written as a long CSV table or as Keysight
EasyEXPERT exports (one file per device, one DataName block per cycle)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from birram.rram.cycling import SweepConfig, run_cycles
from birram.rram.params import get_params

LEVELS_A = (1e-5, 4.64e-5, 2.15e-4, 1e-3)


@functools.lru_cache(maxsize=4)  # the tests write several directories from one population
def simulate(levels_a: tuple[float, ...], devices_per_level: int, cycles: int,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(volts [steps], currents [cycles, steps, devices], compliance [devices])``."""
    icc = torch.tensor(levels_a, dtype=torch.float64).repeat_interleave(devices_per_level)
    n = icc.numel()
    result = run_cycles(get_params("filament"), icc, n=n, cycles=cycles, keep_iv=n, seed=seed,
                        sweep=SweepConfig(step_v=0.02))
    assert result.iv_current is not None
    return result.iv_volts.numpy(), result.iv_current.numpy(), icc.numpy()


def write_table_dir(root: Path, levels_a: tuple[float, ...] = LEVELS_A,
                    devices_per_level: int = 3, cycles: int = 2, seed: int = 0,
                    resistor: bool = False) -> Path:
    """One long table per level: device, cycle, compliance, V, I. ``resistor`` adds a device
    that never switches (a plain 10 kOhm resistor) at the lowest level."""
    volts, current, icc = simulate(levels_a, devices_per_level, cycles, seed)
    root.mkdir(parents=True, exist_ok=True)
    for level, icc_a in enumerate(levels_a):
        lines = ["device,cycle,Icc (A),V (V),I (A)"]
        for d in np.flatnonzero(icc == icc_a):
            for c in range(cycles):
                lines += [f"dev{d},{c + 1},{icc_a:g},{v:.4g},{i:.6g}"
                          for v, i in zip(volts, current[c, :, d])]
        if resistor and level == 0:
            lines += [f"resistor,1,{icc_a:g},{v:.4g},{v / 1e4:.6g}" for v in volts]
        (root / f"level{level}.csv").write_text("\n".join(lines) + "\n")
    return root


def write_easyexpert_dir(root: Path, levels_a: tuple[float, ...] = LEVELS_A,
                         devices_per_level: int = 3, cycles: int = 2, seed: int = 0) -> Path:
    """One EasyEXPERT export per device, its compliance and device name in the setup lines."""
    volts, current, icc = simulate(levels_a, devices_per_level, cycles, seed)
    root.mkdir(parents=True, exist_ok=True)
    for d, icc_a in enumerate(icc):
        lines = ["SetupTitle, I/V Sweep", "PrimitiveTest, I/V Sweep",
                 "TestParameter, Channel.VName, V1", "TestParameter, Channel.IName, I1",
                 f"TestParameter, Measurement.Primary.Compliance, {icc_a:g}",
                 f"MetaData, DeviceID, cell{d}"]
        for c in range(cycles):
            lines += ["DataName, V1, I1"]
            lines += [f"DataValue, {v:.4g}, {i:.6g}" for v, i in zip(volts, current[c, :, d])]
        (root / f"cell{d}.csv").write_text("\n".join(lines) + "\n")
    return root
