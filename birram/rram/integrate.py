"""Time integration of a batch of devices driven by one waveform.

All devices advance together as tensors. Within each voltage step every device takes its own
sub-steps, limited so that the gap moves at most ``max_gap_step_m`` and the width changes by at
most ``max_width_step_frac`` per sub-step: this is what keeps explicit Euler stable at the RESET
knee, where the gap can run at ~100 nm/us. Devices that are done wait (masked) until the slowest
one has finished the step. The stochastic term is a Wiener increment (``sigma * sqrt(h) * N``),
so its effect does not depend on how the step is split.

Two backends run the same equations and step control: tensors (any torch device; the GPU path)
and a compiled CPU kernel (``kernel.py``, numba), which fuses a device's whole waveform into one
loop. ``backend="auto"`` takes the kernel for CPU tensors when numba is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from birram.errors import ConfigError
from birram.rram import kernel, physics
from birram.rram.drive import Compliance, Waveform
from birram.rram.physics import TensorParams
from birram.rram.transistor import (
    TRANSISTOR_COLUMNS,
    TRANSISTOR_ITERS,
    derived_constants,
    drain_current,
)

BISECTION_ITERS = kernel.BISECTION_ITERS
KERNEL_MIN_CHUNK = 256  # devices per thread below which one thread is faster


@dataclass(frozen=True)
class IntegratorOptions:
    max_gap_step_m: float = 0.03e-9
    max_width_step_frac: float = 0.02
    max_substeps: int = 400  # per voltage step; the last one takes whatever time is left
    fixed_substeps: int | None = None  # fixed-step mode: this many equal sub-steps per step
    dtype: torch.dtype = torch.float64
    backend: Literal["auto", "torch", "compiled"] = "auto"
    threads: int | None = None  # compiled backend; None: torch.get_num_threads()


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
    substeps: int  # device sub-steps computed, summed over devices


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
                    compliance: Compliance, icc: Tensor, s_guess: Tensor | None = None,
                    transistor: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Current, gap voltage, heating power at applied voltage ``v`` with the compliance, and
    the normalised compliance-free gap voltage (a warm start for the next call).
    ``transistor``: the per-device constants of :func:`transistor.derived_constants`."""
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
    elif compliance.mode == "transistor":
        assert transistor is not None
        i, vg = _access_transistor_limit(p, v, i, vg, ia, r_cf, transistor)
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


def _access_transistor_limit(p: TensorParams, v: Tensor, i_free: Tensor, vg: Tensor,
                             ia: Tensor, r_cf: Tensor | None, constants: Tensor
                             ) -> tuple[Tensor, Tensor]:
    """Current through cell + access transistor (positive bias), by bisection on V_DS.

    ``V_DS + V_cell(I_D(V_DS)) - V`` rises monotonically with V_DS (both terms do) and changes
    sign in [0, V]; every evaluation is explicit, the cell voltage being ``Vg(I) + I R``.
    """
    r = (r_cf if r_cf is not None else 0.0) + p.r_series_ohm
    lo = torch.zeros_like(v)
    hi = v.clamp_min(0.0)
    for _ in range(TRANSISTOR_ITERS):
        mid = 0.5 * (lo + hi)
        i_mid = drain_current(constants, mid)
        above = mid + physics.gap_voltage_at_current(i_mid, ia, p.v0_v) + i_mid * r > v
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    i = drain_current(constants, 0.5 * (lo + hi))
    positive = v > 0
    return (torch.where(positive, i, i_free),
            torch.where(positive, physics.gap_voltage_at_current(i, ia, p.v0_v), vg))


def _transistor_constants(compliance: Compliance, n: int) -> Tensor:
    if compliance.mode != "transistor":
        return torch.empty((n, 0), dtype=torch.float64)
    if compliance.transistor is None:
        raise ConfigError("compliance mode 'transistor' needs transistor=Transistor(...)")
    return derived_constants(compliance.transistor, n)


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
    if _use_kernel(opts, state):
        return _simulate_compiled(p, wave, compliance, state, generator, opts, record)
    dtype = opts.dtype
    p = p.to(dtype)
    n = state.gap_m.numel()
    cur = _Batch(state.gap_m.to(dtype).clone(), state.width_m.to(dtype).clone(),
                 state.temp_k.to(dtype).clone(), torch.zeros(n, dtype=dtype),
                 torch.zeros(n, dtype=dtype),
                 torch.broadcast_to(torch.as_tensor(compliance.icc_a, dtype=dtype), (n,)),
                 _transistor_constants(compliance, n).to(state.gap_m.device, dtype))
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
        fixed_h = dts[k] / opts.fixed_substeps if opts.fixed_substeps else None
        i = _advance(p, volts[k], cur, compliance, opts, generator, 1, k == 0,
                     final=dts[k] == 0.0 or opts.max_substeps == 1
                     or bool(opts.fixed_substeps == 1), fixed_h=fixed_h)
        total_iters += n
        if "current" in out:
            out["current"][k] = i
        if dts[k] == 0.0:
            continue
        if opts.fixed_substeps:
            _advance(p, volts[k], cur, compliance, opts, generator, opts.fixed_substeps - 1,
                     fixed_h=fixed_h)
            total_iters += n * (opts.fixed_substeps - 1)
            continue
        active = (cur.remaining > 0).nonzero().squeeze(1)
        if active.numel() == 0:
            continue
        sub = cur.subset(active)
        total_iters += active.numel() * _advance(p.subset(active), volts[k], sub, compliance,
                                                 opts, generator, opts.max_substeps - 1,
                                                 count=True)
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
    transistor: Tensor  # [n, 5] access-transistor constants ([n, 0] in the other modes)

    def subset(self, idx: Tensor) -> _Batch:
        return _Batch(*(getattr(self, f.name)[idx] for f in fields(self)))

    def scatter(self, idx: Tensor, sub: _Batch) -> None:
        for f in fields(self):
            if f.name not in ("icc", "transistor"):
                getattr(self, f.name)[idx] = getattr(sub, f.name)


def _advance(p: TensorParams, v_applied: float, b: _Batch, compliance: Compliance,
             opts: IntegratorOptions, generator: torch.Generator | None, iters: int,
             cold: bool = False, count: bool = False, final: bool = True,
             fixed_h: float | None = None) -> Any:
    """Up to ``iters`` sub-steps at constant applied voltage; updates ``b`` in place. With
    ``final`` the last of them takes whatever time is left of the voltage step; ``fixed_h``
    (fixed-step mode) is the length of every sub-step.

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
                                               None if cold and it == 0 else b.s_guess,
                                               b.transistor)
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
        if fixed_h is not None:
            h = b.remaining if last else b.remaining.clamp(max=fixed_h)
        elif last:
            h = b.remaining
        else:
            h = torch.minimum(b.remaining, opts.max_gap_step_m / rg.abs().clamp_min(tiny))
        if grows:
            v_cell = vg + (i * physics.filament_resistance(p, b.gap, b.width)
                           if p.base.rho_ohm_m > 0 else 0.0)
            rw = physics.width_growth_rate(p, b.gap, v_cell, t_rate)
            rw = torch.where(b.width >= p.width_max_m, zero, rw)
            if fixed_h is None and not last:
                h = torch.minimum(h, opts.max_width_step_frac * b.width
                                  / rw.clamp_min(tiny))
            # lateral dissolution is linear in (w - w_min) per unit of gap opening: exact;
            # only the opening the gap bound allows counts
            opened = ((b.gap + rg * h).clamp(max=p.gap_max_m) - b.gap).clamp_min(0.0)
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
        if fixed_h is None and not bool((b.remaining > 0).any()):
            break
    return done if count else first_current


_MODES = {"none": kernel.MODE_NONE, "ideal": kernel.MODE_IDEAL, "1t1r": kernel.MODE_1T1R,
          "transistor": kernel.MODE_TRANSISTOR}


def _use_kernel(opts: IntegratorOptions, state: DeviceState) -> bool:
    if opts.backend == "torch":
        return False
    on_cpu = state.gap_m.device.type == "cpu"
    if opts.backend == "compiled":
        if not kernel.available():
            raise ConfigError("the compiled RRAM integrator needs numba: pip install numba "
                              "(or choose backend='torch')")
        if not on_cpu:
            raise ConfigError("the compiled RRAM integrator runs on the CPU; use "
                              "backend='torch' for GPU tensors")
        return True
    return on_cpu and kernel.available()


def _simulate_compiled(p: TensorParams, wave: Waveform, compliance: Compliance,
                       state: DeviceState, generator: torch.Generator | None,
                       opts: IntegratorOptions, record: Sequence[str]
                       ) -> tuple[Trace, DeviceState]:
    """:func:`simulate` through the compiled kernel (float64 throughout)."""
    n = state.gap_m.numel()
    params = np.empty((n, len(kernel.PARAM_NAMES)), dtype=np.float64)
    for col, name in enumerate(kernel.PARAM_NAMES):
        value = getattr(p, name)
        params[:, col] = value.detach().double().cpu().numpy() if isinstance(value, Tensor) \
            else value
    st = torch.stack([state.gap_m, state.width_m, state.temp_k], 1).double().numpy().copy()
    icc = np.broadcast_to(torch.as_tensor(compliance.icc_a, dtype=torch.float64).numpy(),
                          (n,)).copy()
    transistor = np.zeros((n, len(TRANSISTOR_COLUMNS)), dtype=np.float64)
    if compliance.mode == "transistor":
        transistor[:] = _transistor_constants(compliance, n).numpy()
    steps = wave.steps
    outs = {k: np.empty((n, steps) if k in record else (0, 0), dtype=np.float32)
            for k in ("current", "gap", "width")}
    base = p.base
    noisy = base.gap_noise_m_per_sqrt_s > 0
    # one draw from the caller's generator keys the kernel's counter-based noise
    key = int(torch.randint(0, 2**62, (1,), generator=generator)) if noisy else 0
    counts = np.zeros(n, dtype=np.int64)
    args = (params, wave.volts.double().numpy(), wave.dt_s.double().numpy(),
            _MODES[compliance.mode], icc, float(compliance.v_knee_v), transistor,
            opts.max_gap_step_m, opts.max_width_step_frac, opts.max_substeps,
            opts.fixed_substeps or 0,
            base.width_vel0_m_per_s > 0 or base.dissolution > 0, base.tau_th_s > 0, p.series,
            base.rho_ohm_m > 0, noisy, np.uint64(key), st, outs["current"], outs["gap"],
            outs["width"], counts)
    threads = max(1, min(opts.threads or torch.get_num_threads(), n // KERNEL_MIN_CHUNK))
    if threads == 1:
        kernel.integrate(0, n, *args)
    else:
        # several chunks per thread even out devices that switch (and sub-step) more
        bounds = np.linspace(0, n, 4 * threads + 1).astype(int)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda ab: kernel.integrate(ab[0], ab[1], *args),
                          zip(bounds[:-1], bounds[1:])))
    recorded = {k: torch.from_numpy(v).T for k, v in outs.items() if k in record}
    final = torch.from_numpy(st).to(opts.dtype)
    trace = Trace(wave, recorded.get("current"), recorded.get("gap"), recorded.get("width"),
                  int(counts.sum()))
    return trace, DeviceState(final[:, 0].clone(), final[:, 1].clone(), final[:, 2].clone())
