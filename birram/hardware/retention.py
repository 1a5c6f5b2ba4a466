"""Retention: how a programmed filament's conductance moves with time and temperature.

What the device model itself says. The gap moves only when ``gamma |Vg| >= F_min tox`` (from
0.26 V at a closed gap to 0.66 V at the open gap for ``FILAMENT``), so at zero bias and at a
0.1 V read the gap rate is exactly zero; the radial growth rate carries a factor
``1 - exp(-2 u)`` with ``u ~ V``, so it is zero at zero bias too, and lateral dissolution acts
only while the gap opens. A stored cell (unbiased between reads) therefore never drifts in the
switching model. Under a continuous 0.1 V bias, instead, the
growth law (``Ei = 0.5 eV``, fitted to sub-microsecond SET kinetics) widens a closed filament at
0.24 um/s at 25 C and 5.0 um/s at 85 C: a read-disturb figure for continuous bias, which says the
fitted growth law is not meant for second-to-year times, not a retention law. ``model_rates``
evaluates these rates so tests can hold the model to them.

Added mechanism: thermally activated lateral out-diffusion of the filament's vacancies at zero
bias. The filament edge recedes as the vacancies spread sideways; over time ``t`` the square of
the width shrinks by the 2-D diffusion length squared,

    d(w^2)/dt = -4 D(T),   D(T) = a^2 nu0 exp(-Ea / (kB T)),
    w(t)^2 = max(w_floor^2, w_0^2 - 4 D(T) t),   w_floor = min(w_0, w_min),

with ``a`` = 0.25 nm (the model's own ionic hopping distance ``width_a_m``), ``nu0`` = 1e13 Hz (a
lattice attempt frequency) and ``Ea`` = 1.5 eV, at the upper end of the 1-1.5 eV that Arrhenius
fits of oxide RRAM retention report: with it the top level of the default table (100 uA,
w ~ 4.1 nm) keeps 96.3 % of its conductance after 10 years at 85 C, the usual retention
specification, and loses nothing measurable at 25 C.

The gap does not move at zero bias (field threshold), so the conductance follows from the
device's own conduction law at the level's mean gap and the shrinking width, in its small-signal
(zero-bias) form:

    G(t) / G(0) = G_ss(gap, w(t)) / G_ss(gap, w_0),
    G_ss = 1 / (v0 / I_a(gap, w) + R_cf(gap, w) + R_series),

closed form and exactly monotone in ``w``. At a fixed gap every term scales as ``1/w^2``, so it
equals the ratio of the read currents at 0.1 V (measured: to 1e-14 of the loss). The ratio is
applied to every cell of the level, so each keeps its programmed deviation. Thin filaments lose
a larger fraction than thick ones (default 16 levels, 10 years at 85 C: 40 % at level 1,
3.7 % at level 15; the high-resistance level 0 loses 42 %, which widens the window), as
measured retention of low-compliance states shows. The drift is deterministic: a clock, not a
random process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from birram.errors import ConfigError
from birram.rram import physics
from birram.rram.params import DeviceParams
from birram.rram.physics import KB_EV_PER_K, TensorParams


@dataclass(frozen=True)
class RetentionParams:
    """Lateral out-diffusion of the filament (see the module docstring)."""

    ea_ev: float = 1.5
    attempt_hz: float = 1e13
    hop_m: float = 0.25e-9

    def __post_init__(self) -> None:
        for name in ("ea_ev", "attempt_hz", "hop_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"retention {name} must be > 0, got {value!r}")

    def diffusivity_m2_per_s(self, temp_k: float) -> float:
        return self.hop_m ** 2 * self.attempt_hz * math.exp(-self.ea_ev / (KB_EV_PER_K * temp_k))


def check_time_and_temperature(t_s: float, temp_k: float) -> None:
    if not (math.isfinite(t_s) and t_s >= 0):
        raise ConfigError(f"retention time must be a finite number of seconds >= 0, got {t_s!r}")
    if not (math.isfinite(temp_k) and 0 < temp_k < 1000):
        raise ConfigError(f"retention temperature must lie in (0, 1000) K, got {temp_k!r}")


def width_after(width_m: np.ndarray, width_min_m: float, t_s: float, temp_k: float,
                retention: RetentionParams) -> np.ndarray:
    """Filament width after ``t_s`` seconds at ``temp_k`` (closed form, never grows)."""
    floor = np.minimum(width_m, width_min_m)
    shrink = 4.0 * retention.diffusivity_m2_per_s(temp_k) * t_s
    return np.sqrt(np.maximum(floor ** 2, width_m ** 2 - shrink))


def conductance_ratio(params: DeviceParams, gap_m: np.ndarray, width_m: np.ndarray,
                      v_read_v: float, t_s: float, temp_k: float,
                      retention: RetentionParams) -> np.ndarray:
    """``G(t) / G(0)`` of each level's mean state (``gap_m``, ``width_m``: ``[L]``)."""
    check_time_and_temperature(t_s, temp_k)
    if t_s == 0:
        return np.ones_like(width_m)
    p = TensorParams(params)
    gap = torch.as_tensor(gap_m, dtype=torch.float64)
    before = torch.as_tensor(width_m, dtype=torch.float64)
    after = torch.as_tensor(width_after(width_m, params.width_min_m, t_s, temp_k, retention))
    ratio = small_signal_conductance(p, gap, after) / small_signal_conductance(p, gap, before)
    return ratio.clamp(max=1.0).numpy()


def small_signal_conductance(p: TensorParams, gap_m: Tensor, width_m: Tensor) -> Tensor:
    """Zero-bias limit of the read conductance: the gap (``ia / v0``) in series with the
    filament and the external resistance. Closed form, so exactly monotone in the width."""
    gap_resistance = p.v0_v / physics.gap_prefactor(p, gap_m, width_m)
    return 1.0 / (gap_resistance + physics.filament_resistance(p, gap_m, width_m)
                  + p.r_series_ohm)


def model_rates(params: DeviceParams, gap_m: Tensor, width_m: Tensor, bias_v: float,
                temp_k: float) -> tuple[Tensor, Tensor]:
    """The switching model's own (dgap/dt, dwidth/dt) in m/s at a steady bias and ambient
    temperature (no self-heating: read currents heat a cell by well under a kelvin)."""
    p = TensorParams(params.with_(t_ambient_k=temp_k))
    v = torch.full_like(gap_m, bias_v)
    vg = physics.solve_gap_voltage(v, physics.gap_prefactor(p, gap_m, width_m),
                                   physics.filament_resistance(p, gap_m, width_m)
                                   + p.r_series_ohm, p.v0_v) if p.series else v
    temp = torch.full_like(gap_m, temp_k)
    return (physics.gap_rate(p, gap_m, vg, temp),
            physics.width_growth_rate(p, gap_m, v, temp))
