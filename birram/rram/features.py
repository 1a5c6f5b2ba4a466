"""Features of one SET/RESET cycle, computed from the recorded I-V trace of every device."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

CURRENT_FLOOR_A = 1e-12  # below any instrument's resolution; keeps log|I| finite at V = 0

FEATURE_NAMES = ("r_lrs_ohm", "r_hrs_ohm", "v_set_v", "v_reset_v", "i_reset_a")


@dataclass(frozen=True)
class CycleFeatures:
    """Per-device values for one cycle (tensors of shape ``[n]``)."""

    r_lrs_ohm: Tensor
    r_hrs_ohm: Tensor
    v_set_v: Tensor  # voltage of the largest conductance jump on the SET ramp (gap closure)
    v_reset_v: Tensor  # (negative) voltage where |I| peaks on the RESET ramp: RESET onset
    i_reset_a: Tensor  # that peak current
    i_set_max_a: Tensor  # largest current on the SET half (compliance reached or not)

    def as_dict(self) -> dict[str, Tensor]:
        return {k: getattr(self, k) for k in (*FEATURE_NAMES, "i_set_max_a")}


def set_voltage(volts: Tensor, current: Tensor) -> Tensor:
    """V_set: voltage at which the conductance jumps most on the rising SET ramp.

    Conductance (I/V), not current, so that the sinh nonlinearity and the V = 0 start point do
    not count as jumps; the jump is the gap closing, not the current reaching compliance.
    """
    v = volts.to(current.dtype).unsqueeze(1)
    log_g = torch.log(current.abs().clamp_min(CURRENT_FLOOR_A) / v.abs().clamp_min(1e-9))
    jump = log_g[1:] - log_g[:-1]
    valid = (v[1:] > v[:-1]) & (v[:-1] > 0)
    jump = torch.where(valid, jump, torch.full_like(jump, -torch.inf))
    return volts.to(current.dtype)[jump.argmax(0)]


def reset_point(volts: Tensor, current: Tensor) -> tuple[Tensor, Tensor]:
    """V_reset and I_reset: voltage and magnitude of the peak |I| on the negative half."""
    negative = (volts < 0).unsqueeze(1)
    mag = torch.where(negative, current.abs(), torch.zeros_like(current))
    peak, k = mag.max(0)
    return volts.to(current.dtype)[k], peak


def trace_vector(current: Tensor, points: int) -> Tensor:
    """An I-V trace as a fixed-length vector, one row per device: ``log10 |I|`` (I in A)
    resampled at ``points`` evenly spaced positions along the sweep (linear interpolation).
    Every device sees the same voltage waveform, so position encodes voltage."""
    log_i = torch.log10(current.abs().clamp_min(CURRENT_FLOOR_A)).T  # [n, steps]
    steps = log_i.shape[1]
    pos = torch.linspace(0, steps - 1, points, dtype=torch.float64)
    lo = pos.floor().long().clamp(max=steps - 1)
    hi = (lo + 1).clamp(max=steps - 1)
    frac = (pos - lo).to(log_i.dtype)
    return (log_i[:, lo] * (1 - frac) + log_i[:, hi] * frac).float()


def cycle_features(set_volts: Tensor, set_current: Tensor, reset_volts: Tensor,
                   reset_current: Tensor, r_lrs: Tensor, r_hrs: Tensor) -> CycleFeatures:
    v_reset, i_reset = reset_point(reset_volts, reset_current)
    return CycleFeatures(
        r_lrs_ohm=r_lrs, r_hrs_ohm=r_hrs, v_set_v=set_voltage(set_volts, set_current),
        v_reset_v=v_reset, i_reset_a=i_reset,
        i_set_max_a=torch.where((set_volts > 0).unsqueeze(1), set_current,
                                torch.zeros_like(set_current)).max(0).values)
