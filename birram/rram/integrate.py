"""Time integration of a batch of devices driven by one waveform.

All devices advance together as tensors. Within each voltage step every device takes its own
sub-steps, limited so that the gap moves at most ``max_gap_step_m`` and the width changes by at
most ``max_width_step_frac`` per sub-step: this is what keeps explicit Euler stable at the RESET
knee, where the gap can run at ~100 nm/us. Devices that are done wait (masked) until the slowest
one has finished the step. The stochastic term is a Wiener increment (``sigma * sqrt(h) * N``),
so its effect does not depend on how the step is split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from birram.rram import physics
from birram.rram.drive import Compliance, Waveform
from birram.rram.physics import TensorParams

BISECTION_ITERS = 30


@dataclass(frozen=True)
class IntegratorOptions:
    max_gap_step_m: float = 0.03e-9
    max_width_step_frac: float = 0.02
    max_substeps: int = 400  # per voltage step; the last one takes whatever time is left
    fixed_substeps: int | None = None  # fixed-step mode: this many equal sub-steps per step
    dtype: torch.dtype = torch.float64


@dataclass
class DeviceState:
    gap_m: Tensor
    width_m: Tensor
    temp_k: Tensor

    def clone(self) -> DeviceState:
        return DeviceState(self.gap_m.clone(), self.width_m.clone(), self.temp_k.clone())


@dataclass(frozen=True)
class Trace:
    """What was recorded at each voltage point (rows) for each device (columns)."""

    wave: Waveform
    current_a: Tensor | None  # [steps, n]
    gap_m: Tensor | None
    width_m: Tensor | None
    substeps: int  # sub-step iterations taken (the same for the whole batch)


def initial_state(p: TensorParams, n: int, dtype: torch.dtype = torch.float64,
                  gap_m: float | Tensor | None = None,
                  width_m: float | Tensor | None = None) -> DeviceState:
    """Devices in their high-resistance state: gap fully open, thinnest filament."""
    def full(v: float | Tensor) -> Tensor:
        return torch.broadcast_to(torch.as_tensor(v, dtype=dtype), (n,)).clone()

    gap = full(p.gap_max_m if gap_m is None else gap_m)
    width = full(p.width_min_m if width_m is None else width_m)
    if not p.base.has_filament:
        width = full(p.width_ref_m)
    return DeviceState(gap, width, full(p.t_ambient_k))


def operating_point(p: TensorParams, v: Tensor, gap: Tensor, width: Tensor,
                    compliance: Compliance, icc: Tensor, s_guess: Tensor | None = None
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Current, gap voltage, heating power at applied voltage ``v`` with the compliance, and
    the normalised compliance-free gap voltage (a warm start for the next call)."""
    ia = physics.gap_prefactor(p, gap, width)
    r_cf = physics.filament_resistance(p, gap, width) if p.base.rho_ohm_m > 0 else None
    if p.series:
        r = (r_cf if r_cf is not None else 0.0) + p.r_series_ohm
        vg = physics.solve_gap_voltage(v, ia, torch.as_tensor(r, dtype=v.dtype), p.v0_v,
                                       s_guess)
    else:
        vg = v
    s_free = vg.abs() / p.v0_v
    i = ia * torch.sinh(vg / p.v0_v)
    if compliance.mode == "ideal":
        over = (v > 0) & (i > icc)
        i = torch.where(over, icc, i)
        vg = torch.where(over, physics.gap_voltage_at_current(icc, ia, p.v0_v), vg)
    elif compliance.mode == "1t1r":
        i, vg = _transistor_limit(p, v, i, vg, ia, r_cf, icc, compliance.v_knee_v)
    power = (vg * i).abs()
    if r_cf is not None:
        power = power + i * i * r_cf
    return i, vg, power, s_free


def _transistor_limit(p: TensorParams, v: Tensor, i_free: Tensor, vg: Tensor, ia: Tensor,
                      r_cf: Tensor | None, icc: Tensor, v_knee: float) -> tuple[Tensor, Tensor]:
    """Current through cell + transistor in series (positive bias), by bisection on I.

    ``V = Vg(I) + I (R_cf + R_s) + v_knee atanh(I / I_CC)`` rises monotonically with I, and the
    root lies below both the transistor-free current and I_CC.
    """
    r = (r_cf if r_cf is not None else 0.0) + p.r_series_ohm
    lo = torch.zeros_like(i_free)
    hi = torch.minimum(i_free.clamp_min(0.0), icc * (1 - 1e-12))
    for _ in range(BISECTION_ITERS):
        mid = 0.5 * (lo + hi)
        v_mid = (physics.gap_voltage_at_current(mid, ia, p.v0_v) + mid * r
                 + v_knee * torch.atanh(mid / icc))
        above = v_mid > v
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    i = 0.5 * (lo + hi)
    positive = v > 0
    return (torch.where(positive, i, i_free),
            torch.where(positive, physics.gap_voltage_at_current(i, ia, p.v0_v), vg))


def simulate(p: TensorParams, wave: Waveform, compliance: Compliance, state: DeviceState,
             generator: torch.Generator | None = None,
             options: IntegratorOptions | None = None,
             record: Sequence[str] = ("current",)) -> tuple[Trace, DeviceState]:
    """Drive every device with ``wave``; return the recorded trace and the final state.

    The current recorded at step k is measured at V_k on the state at the start of that step,
    then the state evolves for the duration of the step. The first sub-step of every voltage
    step runs on the whole batch; the remaining ones only on the devices that still have time
    left (usually the few that are switching), gathered into a smaller batch.
    """
    opts = options or IntegratorOptions()
    dtype = opts.dtype
    p = p.to(dtype)
    n = state.gap_m.numel()
    cur = _Batch(state.gap_m.to(dtype).clone(), state.width_m.to(dtype).clone(),
                 state.temp_k.to(dtype).clone(), torch.zeros(n, dtype=dtype),
                 torch.zeros(n, dtype=dtype),
                 torch.broadcast_to(torch.as_tensor(compliance.icc_a, dtype=dtype), (n,)))
    volts = wave.volts.to(dtype).tolist()
    dts = wave.dt_s.tolist()
    out = {k: torch.empty(wave.steps, n, dtype=torch.float32) for k in record}
    total_iters = 0
    for k in range(wave.steps):
        cur.remaining.fill_(dts[k])
        if "gap" in out:
            out["gap"][k] = cur.gap
        if "width" in out:
            out["width"][k] = cur.width
        i = _advance(p, volts[k], cur, compliance, opts, generator, 1, k == 0,
                     final=opts.max_substeps == 1 or bool(opts.fixed_substeps == 1))
        total_iters += 1
        if "current" in out:
            out["current"][k] = i
        if dts[k] == 0.0:
            continue
        if opts.fixed_substeps:
            _advance(p, volts[k], cur, compliance, opts, generator, opts.fixed_substeps - 1)
            total_iters += opts.fixed_substeps - 1
            continue
        active = (cur.remaining > 0).nonzero().squeeze(1)
        if active.numel() == 0:
            continue
        sub = cur.subset(active)
        total_iters += _advance(p.subset(active), volts[k], sub, compliance, opts, generator,
                                opts.max_substeps - 1, count=True)
        cur.scatter(active, sub)
    trace = Trace(wave, out.get("current"), out.get("gap"), out.get("width"), total_iters)
    return trace, DeviceState(cur.gap, cur.width, cur.temp)


@dataclass
class _Batch:
    """Integration state of the devices being advanced (the whole batch or a subset)."""

    gap: Tensor
    width: Tensor
    temp: Tensor
    s_guess: Tensor  # last normalised gap voltage: a warm start for the series solve
    remaining: Tensor  # time left in the current voltage step
    icc: Tensor

    def subset(self, idx: Tensor) -> _Batch:
        return _Batch(*(getattr(self, f.name)[idx] for f in fields(self)))

    def scatter(self, idx: Tensor, sub: _Batch) -> None:
        for f in fields(self):
            if f.name != "icc":
                getattr(self, f.name)[idx] = getattr(sub, f.name)


def _advance(p: TensorParams, v_applied: float, b: _Batch, compliance: Compliance,
             opts: IntegratorOptions, generator: torch.Generator | None, iters: int,
             cold: bool = False, count: bool = False, final: bool = True) -> Any:
    """Up to ``iters`` sub-steps at constant applied voltage; updates ``b`` in place. With
    ``final`` the last of them takes whatever time is left of the voltage step.

    Returns the current of the first sub-step (or, with ``count``, the number of sub-steps).
    """
    n = b.gap.numel()
    dtype = b.gap.dtype
    v = torch.full((n,), v_applied, dtype=dtype)
    zero = torch.zeros(n, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    grows = p.base.width_vel0_m_per_s > 0 or p.base.dissolution > 0
    dynamic_heat = p.base.tau_th_s > 0
    first_current = zero
    done = 0
    for it in range(iters):
        i, vg, power, s_free = operating_point(p, v, b.gap, b.width, compliance, b.icc,
                                               None if cold and it == 0 else b.s_guess)
        b.s_guess = s_free
        if it == 0:
            first_current = i
        t_target = physics.cell_temperature(p, power)
        t_rate = b.temp if dynamic_heat else t_target
        rg = physics.gap_rate(p, b.gap, vg, t_rate)
        # a gap pinned at a bound does not limit the step
        pinned = ((b.gap <= p.gap_min_m) & (rg < 0)) | ((b.gap >= p.gap_max_m) & (rg > 0))
        rg = torch.where(pinned, zero, rg)
        last = final and it == iters - 1
        if opts.fixed_substeps:
            h = b.remaining / (iters - it)
        elif last:
            h = b.remaining
        else:
            h = torch.minimum(b.remaining, opts.max_gap_step_m / rg.abs().clamp_min(tiny))
        if grows:
            v_cell = vg + (i * physics.filament_resistance(p, b.gap, b.width)
                           if p.base.rho_ohm_m > 0 else 0.0)
            rw = physics.width_growth_rate(p, b.gap, v_cell, t_rate)
            rw = torch.where(b.width >= p.width_max_m, zero, rw)
            if not opts.fixed_substeps and not last:
                h = torch.minimum(h, opts.max_width_step_frac * b.width
                                  / rw.clamp_min(tiny))
            # lateral dissolution is linear in (w - w_min) per unit of gap opening: exact
            opened = (rg * h).clamp_min(0.0)
            width = p.width_min_m + (b.width + rw * h - p.width_min_m) * torch.exp(
                -p.dissolution * opened / p.l0_m)
            b.width = width.clamp(min=p.width_min_m).clamp(max=p.width_max_m)
        gap = b.gap + rg * h
        if p.base.gap_noise_m_per_sqrt_s > 0:
            sigma = p.gap_noise_m_per_sqrt_s / (1 + torch.exp((p.t_crit_k - t_rate)
                                                              / p.t_smooth_k))
            gap = gap + sigma * h.sqrt() * torch.randn(n, dtype=dtype, generator=generator)
        b.gap = gap.clamp(min=p.gap_min_m).clamp(max=p.gap_max_m)
        if dynamic_heat:
            b.temp = t_target + (b.temp - t_target) * torch.exp(-h / p.tau_th_s)
        else:
            b.temp = t_target
        b.remaining = b.remaining - h
        done += 1
        if not opts.fixed_substeps and not bool((b.remaining > 0).any()):
            break
    return done if count else first_current
