"""Voltage waveforms (DC sweeps, pulses) and the compliance that limits the SET current."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from birram.errors import ConfigError
from birram.rram.transistor import Transistor

ComplianceMode = Literal["ideal", "1t1r", "transistor", "none"]
COMPLIANCE_MODES = ("ideal", "1t1r", "transistor", "none")


@dataclass(frozen=True)
class Waveform:
    """Applied voltage ``volts[k]`` held during ``(times[k-1], times[k]]`` (times[0] = 0).

    ``branch[k]`` is +1 on the SET half of a sweep, -1 on the RESET half, 0 elsewhere; features
    use it to find V_set and V_reset.
    """

    times_s: Tensor
    volts: Tensor
    branch: Tensor

    @property
    def steps(self) -> int:
        return int(self.volts.numel())

    @property
    def dt_s(self) -> Tensor:
        return torch.diff(self.times_s, prepend=self.times_s[:1])


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")


def sweep_half(v_peak: float, rate_v_per_s: float = 1e4, step_v: float = 5e-3) -> Waveform:
    """One half of a DC cycle, 0 -> v_peak -> 0, starting with a measurement at 0 V."""
    for name, value in (("sweep peak |V|", abs(v_peak)), ("sweep rate", rate_v_per_s),
                        ("sweep step", step_v)):
        _check_positive(name, value)
    n = max(1, round(abs(v_peak) / step_v))
    up = torch.linspace(0.0, v_peak, n + 1, dtype=torch.float64)
    volts = torch.cat([up, up.flip(0)[1:]])
    dv = torch.diff(volts, prepend=volts[:1]).abs()
    times = torch.cumsum(dv / rate_v_per_s, 0)
    branch = torch.full_like(volts, 1 if v_peak > 0 else -1).to(torch.int8)
    return Waveform(times, volts, branch)


def triangular_sweep(v_set_max: float = 1.5, v_reset_max: float = 1.6,
                     rate_v_per_s: float = 1e4, step_v: float = 5e-3) -> Waveform:
    """DC cycle 0 -> +v_set_max -> 0 -> -v_reset_max -> 0 at a constant sweep rate."""
    return concat(sweep_half(v_set_max, rate_v_per_s, step_v),
                  sweep_half(-v_reset_max, rate_v_per_s, step_v))


def pulse(amplitude_v: float, width_s: float, rise_s: float = 1e-9, steps: int = 100,
          idle_s: float = 0.0) -> Waveform:
    """A trapezoidal voltage pulse (rise, plateau, fall), optionally followed by idle time."""
    _check_positive("pulse width", width_s)
    _check_positive("pulse rise time", rise_s)
    if not math.isfinite(amplitude_v) or amplitude_v == 0:
        raise ConfigError(f"pulse amplitude must be a non-zero finite voltage, got {amplitude_v}")
    n_edge = max(2, steps // 10)
    t_rise = torch.linspace(0, rise_s, n_edge + 1, dtype=torch.float64)
    t_flat = torch.linspace(rise_s, rise_s + width_s, steps + 1, dtype=torch.float64)[1:]
    t_fall = torch.linspace(rise_s + width_s, 2 * rise_s + width_s, n_edge + 1,
                            dtype=torch.float64)[1:]
    v_rise = amplitude_v * t_rise / rise_s
    v_flat = torch.full_like(t_flat, amplitude_v)
    v_fall = amplitude_v * (1 - (t_fall - rise_s - width_s) / rise_s)
    times = torch.cat([t_rise, t_flat, t_fall])
    volts = torch.cat([v_rise, v_flat, v_fall])
    if idle_s > 0:
        t_idle = times[-1] + torch.linspace(0, idle_s, n_edge + 1, dtype=torch.float64)[1:]
        times, volts = torch.cat([times, t_idle]), torch.cat([volts, torch.zeros_like(t_idle)])
    branch = (torch.sign(volts)).to(torch.int8)
    return Waveform(times, volts, branch)


def concat(*waves: Waveform) -> Waveform:
    """Play waveforms one after the other."""
    times, volts, branch, offset = [], [], [], 0.0
    for w in waves:
        times.append(w.times_s + offset)
        volts.append(w.volts)
        branch.append(w.branch)
        offset = float(times[-1][-1])
    return Waveform(torch.cat(times), torch.cat(volts), torch.cat(branch))


@dataclass(frozen=True)
class Compliance:
    """Current limit during SET (positive bias).

    ``ideal``: a source-measure unit that clamps the current at I_CC; the device voltage is
    solved back from the clamped current. ``1t1r``: a series transistor whose current saturates
    smoothly at I_CC, ``I_T = I_CC tanh(V_T / v_knee)``; the applied voltage splits between
    the transistor and the cell. ``transistor``: the access transistor described by
    ``transistor`` (threshold, transconductance, word-line voltage); the limit follows from
    its gate and drain voltages, and ``icc_a`` is not used. ``none``: no limit. Under negative
    bias (RESET) every mode lets the cell take the current it draws.
    """

    icc_a: float | Tensor = 100e-6
    mode: ComplianceMode = "ideal"
    v_knee_v: float = 0.2
    transistor: Transistor | None = None

    def validated(self) -> Compliance:
        if self.mode not in COMPLIANCE_MODES:
            raise ConfigError(f"compliance mode must be {', '.join(COMPLIANCE_MODES)}, "
                              f"got {self.mode!r}")
        if self.mode == "transistor":
            if self.transistor is None:
                raise ConfigError("compliance mode 'transistor' needs transistor=Transistor(...)"
                                  " (its threshold, K and word-line voltage)")
            self.transistor.validated()
        elif self.mode != "none":
            icc = torch.as_tensor(self.icc_a, dtype=torch.float64)
            bad = ~torch.isfinite(icc) | (icc <= 0)
            if bool(bad.any()):
                raise ConfigError(f"compliance current must be > 0 A, got "
                                  f"{icc[bad].flatten()[0].item()!r}")
            _check_positive("1T1R knee voltage", self.v_knee_v)
        return self
