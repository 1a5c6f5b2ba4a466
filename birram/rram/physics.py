"""The model equations as pure, vectorised functions over a batch of devices.

Every function takes tensors of shape ``[n]`` (or broadcastable) and a :class:`TensorParams`
whose fields are floats (shared) or ``[n]`` tensors (per-device values after variability).

Conduction: the gap conducts ``I = Ia * sinh(Vg / v0)`` with ``Ia = i0 (w/w_ref)^2 exp(-g/g0)``,
in series with the filament ``R_cf = rho (L0 - g) / (pi w^2 / 4)`` and an external resistance.
The applied voltage splits as ``V = Vg + I (R_cf + R_series)``; with no series element Vg = V.
"""

from __future__ import annotations

import math
from dataclasses import fields

import torch
from torch import Tensor

from birram.rram.params import DeviceParams

KB_EV_PER_K = 8.617333262e-5  # Boltzmann constant in eV/K: (q V)/(kB T) = V / (kB_eV T)
MAX_EXPONENT = 80.0  # keeps exp() finite in float32 as well as float64
NEWTON_MAX_ITERS = 50
# Newton converges quadratically here with a constant below 1/2, so once every step is below
# 1e-6 the error left on s = Vg / v0 is below 1e-12 (float32 stops at its own resolution)
NEWTON_STOP_STEP = 1e-6

Value = float | Tensor


class TensorParams:
    """A :class:`DeviceParams` whose fields may be per-device tensors (after variability)."""

    def __init__(self, base: DeviceParams, per_device: dict[str, Tensor] | None = None) -> None:
        self.base = base
        for f in fields(base):
            if f.name != "name":
                setattr(self, f.name, float(getattr(base, f.name)))
        self.per_device = dict(per_device or {})
        for key, value in self.per_device.items():
            if not hasattr(base, key):
                raise KeyError(f"unknown device parameter {key!r}")
            setattr(self, key, value)
        self.series = base.rho_ohm_m > 0 or base.r_series_ohm > 0

    def to(self, dtype: torch.dtype) -> TensorParams:
        """The same parameters with per-device tensors in ``dtype``."""
        if all(v.dtype == dtype for v in self.per_device.values()):
            return self
        return TensorParams(self.base, {k: v.to(dtype) for k, v in self.per_device.items()})

    def subset(self, idx: Tensor) -> TensorParams:
        """The parameters of the devices ``idx`` only."""
        return TensorParams(self.base, {k: v[idx] for k, v in self.per_device.items()})

    def __getattr__(self, name: str) -> Value:  # only reached for names not set above
        raise AttributeError(name)


def gap_prefactor(p: TensorParams, gap: Tensor, width: Tensor) -> Tensor:
    """Ia: current scale of the gap; it grows with the filament cross-section."""
    return p.i0_a * (width / p.width_ref_m) ** 2 * torch.exp(-gap / p.g0_m)


def filament_resistance(p: TensorParams, gap: Tensor, width: Tensor) -> Tensor:
    """Resistance of the conducting filament of length L0 - g (zero for the gap-only model)."""
    return p.rho_ohm_m * (p.l0_m - gap) / (math.pi / 4.0 * width * width)


def solve_gap_voltage(v: Tensor, ia: Tensor, r_ohm: Tensor, v0: Value,
                      guess: Tensor | None = None) -> Tensor:
    """Vg with ``V = Vg + r * ia * sinh(Vg / v0)``, by Newton.

    ``s + b sinh(s) = a`` (s = Vg/v0, b = r ia / v0, a = |V|/v0) is convex and increasing for
    s >= 0: started above the root, Newton converges monotonically; started below, its first
    step lands above. Cold starts use an upper bound; a warm start (``guess``, the previous
    sub-step's |Vg|/v0) needs fewer iterations. Iterates until the error is below 1e-12 (see
    NEWTON_STOP_STEP), so the answer does not depend on the starting point.
    """
    a = v.abs() / v0
    b = r_ohm * ia / v0
    upper = torch.minimum(a / (1.0 + b), torch.asinh(a / b.clamp_min(1e-300)))
    s = upper if guess is None else torch.minimum(guess, upper)
    stop = max(NEWTON_STOP_STEP, 100 * torch.finfo(s.dtype).eps)
    for _ in range(NEWTON_MAX_ITERS):
        step = (s + b * torch.sinh(s) - a) / (1.0 + b * torch.cosh(s))
        s = s - step
        if not bool((step.abs() > stop).any()):
            break
    return torch.sign(v) * s.clamp_min(0.0) * v0


def gap_voltage_at_current(i: Tensor, ia: Tensor, v0: Value) -> Tensor:
    """Inverse of the gap conduction law: the gap voltage that carries current ``i``."""
    return v0 * torch.asinh(i / ia)


def cell_temperature(p: TensorParams, power_w: Tensor) -> Tensor:
    """Steady-state local temperature with a static thermal resistance."""
    return p.t_ambient_k + power_w * p.rth_k_per_w


def field_factor(p: TensorParams, gap: Tensor) -> Tensor:
    """Local field enhancement, which weakens as the gap grows."""
    return p.gamma0 - p.beta * (gap / 1e-9) ** 3


def gap_rate(p: TensorParams, gap: Tensor, vg: Tensor, temp_k: Tensor) -> Tensor:
    """dg/dt (m/s): negative (shrinking, SET) for positive gap voltage, positive for negative.

    Two thermally activated exponentials; with equal activation energies this is the published
    ``-vel0 exp(-Ea/kT) sinh(gamma a0 V / (tox kT))``. No motion below the field threshold.
    """
    kt = KB_EV_PER_K * temp_k
    gamma = field_factor(p, gap)
    u = (gamma * (p.a0_m / p.tox_m) * vg / kt).clamp(-MAX_EXPONENT, MAX_EXPONENT)
    forward = torch.exp((u - p.ea_ev / kt).clamp(max=MAX_EXPONENT))
    backward = torch.exp((-u - p.ea_reset_ev / kt).clamp(max=MAX_EXPONENT))
    rate = -0.5 * p.vel0_m_per_s * (forward - backward)
    moving = gamma * vg.abs() >= p.f_min_v_per_m * p.tox_m
    return torch.where(moving, rate, torch.zeros_like(rate))


def width_growth_rate(p: TensorParams, gap: Tensor, v_cell: Tensor, temp_k: Tensor) -> Tensor:
    """Radial growth dw/dt (m/s) under positive bias once the gap has (nearly) closed:
    thermally activated ion motion, enhanced by the cell voltage."""
    kt = KB_EV_PER_K * temp_k
    u = (p.width_a_m / p.width_len_m) * v_cell.clamp_min(0.0) / kt
    closed = torch.exp(-(gap - p.gap_min_m) / p.g0_m)
    return p.width_vel0_m_per_s * closed * torch.exp(
        (u - p.ei_ev / kt).clamp(max=MAX_EXPONENT)) * (1.0 - torch.exp(-2.0 * u))


def width_dissolution_rate(p: TensorParams, width: Tensor, dgap_dt: Tensor) -> Tensor:
    """Lateral dissolution dw/dt (m/s) while the gap opens during RESET: without it the
    filament never thins and R_LRS drifts down over cycles. The integrator applies it exactly,
    ``w - w_min ~ exp(-dissolution * (gap opened) / L0)``."""
    return -p.dissolution * (width - p.width_min_m) * dgap_dt.clamp_min(0.0) / p.l0_m


def read_current(p: TensorParams, gap: Tensor, width: Tensor, v_read: float) -> Tensor:
    """Current at a small read voltage, no compliance (a read never reaches it)."""
    ia = gap_prefactor(p, gap, width)
    vg = torch.full_like(gap, v_read)
    if p.series:
        r = filament_resistance(p, gap, width) + p.r_series_ohm
        vg = solve_gap_voltage(vg, ia, r, p.v0_v)
    return ia * torch.sinh(vg / p.v0_v)


def read_resistance(p: TensorParams, gap: Tensor, width: Tensor, v_read: float = 0.1) -> Tensor:
    return v_read / read_current(p, gap, width, v_read)
