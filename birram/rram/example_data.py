"""Simulated measurement campaigns, written as a Keysight EasyEXPERT CSV export.

A population of gap + filament devices is cycled with DC sweeps at a few compliance currents,
and each recorded current goes through a model of the source-measure unit: noise proportional
to the reading plus a noise floor, the current held at the compliance on the SET side, and a
finite resolution (each reading rounded to a number of digits of its decade range, never finer
than the smallest range allows). One file holds the cycles of one device at one compliance
(one ``DataName`` block per cycle); the setup lines name the device and the compliance::

    examples/measured/D01_icc10uA.csv      device D01 at 10 uA, cycles 1..C
    examples/measured/D01_icc100uA.csv
    ...

The true parameters of every device and cycle are kept, so a fit can be checked against them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from birram import io
from birram.errors import ConfigError
from birram.rram.drive import Compliance, triangular_sweep
from birram.rram.fit import FIT_PARAMS
from birram.rram.integrate import initial_state, simulate
from birram.rram.params import FILAMENT, DeviceParams, validate_params
from birram.rram.variability import Variability, ar1_step, device_params, draw_normals

# The spread the example population has: on the fitted parameters only, so a fit can be
# checked against it (a spread of a parameter that is held fixed would show up, unchecked,
# in the fitted ones). Device to device and cycle to cycle, as log-normal sigmas.
EXAMPLE_D2D = (("dissolution", 0.15), ("f_min_v_per_m", 0.05), ("i0_a", 0.15),
               ("v0_v", 0.05))
EXAMPLE_C2C = (("dissolution", 0.10), ("f_min_v_per_m", 0.03), ("i0_a", 0.10))
EXAMPLE_VARIABILITY = Variability(d2d=EXAMPLE_D2D, c2c=EXAMPLE_C2C, c2c_rho=0.7,
                                  read_noise_sigma=0.0)


@dataclass(frozen=True)
class InstrumentModel:
    """What a source-measure unit does to a current it measures."""

    relative_sigma: float = 0.02  # Gaussian noise, as a fraction of the reading
    noise_floor_a: float = 2e-11  # additive Gaussian noise (rms): the smallest visible current
    digits: int = 4  # resolution: a reading is rounded to 10^-digits of its decade range
    min_range_a: float = 1e-9  # the most sensitive range (its resolution is the finest step)

    def validated(self) -> InstrumentModel:
        for name in ("relative_sigma", "noise_floor_a", "min_range_a"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"instrument {name} must be >= 0, got {value!r}")
        if not (isinstance(self.digits, int) and 1 <= self.digits <= 9):
            raise ConfigError(f"instrument digits must be an integer in [1, 9], "
                              f"got {self.digits!r}")
        return self

    def read(self, volts: np.ndarray, current: np.ndarray, icc_a: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
        """Readings of ``current[..., points]`` (``icc_a`` broadcast over the leading axes)."""
        noisy = current * (1 + self.relative_sigma * rng.standard_normal(current.shape))
        noisy = noisy + self.noise_floor_a * rng.standard_normal(current.shape)
        icc = np.asarray(icc_a)[..., None]
        noisy = np.where(volts > 0, np.minimum(noisy, icc), noisy)  # held at compliance
        decade = 10.0 ** np.ceil(np.log10(np.maximum(np.abs(noisy), self.min_range_a)))
        step = decade * 10.0 ** -self.digits
        return np.round(noisy / step) * step


@dataclass(frozen=True, eq=False)
class Campaign:
    """Sweeps of ``devices x levels x cycles`` and the parameters that made them."""

    volts: np.ndarray  # [points]
    current_a: np.ndarray  # [devices, levels, cycles, points], as simulated
    reading_a: np.ndarray  # the same through the instrument model
    levels_a: np.ndarray  # [levels]
    true_log: dict[str, np.ndarray]  # log of each fitted parameter [devices, levels, cycles]
    device_log: dict[str, np.ndarray]  # the device-to-device part only [devices]
    variability: Variability
    params: DeviceParams
    rate_v_per_s: float

    @property
    def device_names(self) -> list[str]:
        return [f"D{k + 1:02d}" for k in range(self.current_a.shape[0])]


def simulate_campaign(devices: int = 4, levels_a: Sequence[float] = (1e-5, 1e-4, 1e-3),
                      cycles: int = 2, *, params: DeviceParams = FILAMENT,
                      variability: Variability = EXAMPLE_VARIABILITY, seed: int = 0,
                      step_v: float = 0.01, rate_v_per_s: float = 1e4, v_set_max: float = 1.5,
                      v_reset_max: float = 1.6, warmup_cycles: int = 1,
                      instrument: InstrumentModel | None = None) -> Campaign:
    """Each device is cycled at every level from a fresh high-resistance state (one warm-up
    cycle, then ``cycles`` recorded ones), with its own device-to-device draw at all levels
    and an AR(1) cycle-to-cycle draw per level."""
    validate_params(params)
    variability.validated(params)
    instrument = (instrument or InstrumentModel()).validated()
    if not (1 <= devices <= 10_000 and 1 <= cycles <= 1000 and len(levels_a) >= 1):
        raise ConfigError(f"need 1-10000 devices, 1-1000 cycles and a compliance level, got "
                          f"{devices}, {cycles}, {len(levels_a)}")
    levels = np.asarray(sorted(levels_a), dtype=np.float64)
    n_levels = levels.size
    n = devices * n_levels
    device_of = torch.arange(n) // n_levels
    level_of = torch.arange(n) % n_levels
    gen = torch.Generator().manual_seed(seed)
    z_device = draw_normals(variability.d2d, devices, gen)
    z_d2d = {k: v[device_of] for k, v in z_device.items()}
    z_c2c = draw_normals(variability.c2c, n, gen)
    wave = triangular_sweep(v_set_max, v_reset_max, rate_v_per_s, step_v)
    icc = torch.from_numpy(levels)[level_of]
    state = initial_state(device_params(params, variability, z_d2d), n)
    currents, true_log = [], {p: [] for p in FIT_PARAMS}
    for cycle in range(warmup_cycles + cycles):
        p = device_params(params, variability, z_d2d, z_c2c)
        trace, state = simulate(p, wave, Compliance(icc), state, gen)
        z_c2c = ar1_step(z_c2c, variability.c2c_rho, gen)
        if cycle < warmup_cycles:
            continue
        assert trace.current_a is not None
        currents.append(trace.current_a.double().numpy().T)  # [n, points]
        for name in FIT_PARAMS:
            value = getattr(p, name)
            true_log[name].append(np.log(value.numpy() if isinstance(value, torch.Tensor)
                                         else np.full(n, value)))
    volts = wave.volts.numpy()
    current = np.stack(currents, 1).reshape(devices, n_levels, cycles, -1)
    rng = np.random.default_rng(seed)
    reading = instrument.read(volts, current, levels[None, :, None], rng)
    scale = dict(variability.d2d)
    device_log = {name: np.log(getattr(params, name))
                  + variability.scale * scale.get(name, 0.0)
                  * (z_device[name].numpy() if name in z_device else np.zeros(devices))
                  for name in FIT_PARAMS}
    return Campaign(volts, current, reading, levels,
                    {k: np.stack(v, 1).reshape(devices, n_levels, cycles)
                     for k, v in true_log.items()},
                    device_log, variability, params, rate_v_per_s)


def level_label(icc_a: float) -> str:
    """10uA, 100uA, 1mA: the compliance as file names carry it."""
    if icc_a >= 1e-3:
        return f"{icc_a * 1e3:.3g}mA"
    if icc_a >= 1e-6:
        return f"{icc_a * 1e6:.3g}uA"
    return f"{icc_a * 1e9:.3g}nA"


def easyexpert_text(device: str, icc_a: float, volts: np.ndarray, readings: np.ndarray,
                    rate_v_per_s: float) -> str:
    """One device at one compliance: a block (setup lines, ``DataName``, ``DataValue`` rows)
    per cycle, as EasyEXPERT appends repeated runs of one setup."""
    lines: list[str] = []
    for cycle, reading in enumerate(readings, 1):
        lines += [
            "SetupTitle, I/V Sweep",
            "PrimitiveTest, I/V Sweep",
            "TestParameter, Channel.UnitType, SMU",
            "TestParameter, Channel.Unit, SMU1:HR",
            "TestParameter, Channel.IName, I1",
            "TestParameter, Channel.VName, V1",
            "TestParameter, Channel.Mode, V",
            "TestParameter, Channel.Func, VAR1",
            f"TestParameter, Measurement.Primary.Start, {volts[0]:g}",
            f"TestParameter, Measurement.Primary.Stop, {volts.max():g}",
            f"TestParameter, Measurement.Primary.Step, {np.median(np.abs(np.diff(volts))):g}",
            f"TestParameter, Measurement.Primary.Compliance, {icc_a:g}",
            f"TestParameter, Measurement.Primary.SweepRate, {rate_v_per_s:g}",
            f"TestParameter, MetaData.DeviceID, {device}",
            f"TestParameter, MetaData.Cycle, {cycle}",
            "DataName, V1, I1",
        ]
        lines += [f"DataValue, {v:.3f}, {i:.4e}" for v, i in zip(volts, reading)]
    return "\n".join(lines) + "\n"


def write_campaign(campaign: Campaign, out: Path | str) -> list[Path]:
    """One EasyEXPERT file per device and compliance level; returns the paths written."""
    out = Path(out)
    paths = []
    for d, name in enumerate(campaign.device_names):
        for lvl, icc in enumerate(campaign.levels_a):
            path = out / f"{name}_icc{level_label(float(icc))}.csv"
            io.write_text(path, easyexpert_text(name, float(icc), campaign.volts,
                                                campaign.reading_a[d, lvl],
                                                campaign.rate_v_per_s))
            paths.append(path)
    return paths
