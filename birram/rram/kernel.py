"""Compiled CPU integrator: the same equations and step control as ``integrate.py``, fused.

The tensor integrator spends its time in per-operation overhead: each sub-step is ~100 small
array operations, each a pass over memory. Here one compiled loop integrates a whole device
over the whole waveform with every intermediate value in registers, and the work a device does
not need is skipped (no gap-rate exponentials below the field threshold or against the bound the
gap is pushed into, no radial growth under negative bias, no dissolution while the gap is not
opening). Chunks of devices run on Python threads (the compiled loop releases the GIL), as many
as ``torch.get_num_threads()``, so ``--threads`` means the same for the simulator as for
training (numba's own OpenMP threads would reset torch's thread count). Noise comes from a
counter-based generator keyed by (seed, device, step, sub-step), so the output does not depend
on the number of threads.

The equations are those of ``physics.py`` written for one device; ``tests/rram/test_kernel.py``
holds the two backends to the same currents for every parameter set and compliance mode.
Numba is optional: :func:`available` says whether this backend can run.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from birram.cache import numba_cache_dir
from birram.rram.physics import KB_EV_PER_K, MAX_EXPONENT, NEWTON_MAX_ITERS, NEWTON_STOP_STEP
from birram.rram.transistor import TRANSISTOR_ITERS

try:  # pragma: no cover - exercised by whichever branch the environment takes
    import numba
    from numba import njit
except ImportError:  # pragma: no cover
    numba = None

if numba is not None and not os.environ.get("NUMBA_CACHE_DIR"):
    # cache=True would write the compiled kernels into the installed package; the user's cache
    # directory is the place (numba picks it when the functions below are decorated).
    numba.config.CACHE_DIR = str(numba_cache_dir())

# Column order of the per-device parameter matrix.
PARAM_NAMES = ("i0_a", "g0_m", "v0_v", "vel0_m_per_s", "gamma0", "beta", "ea_ev", "ea_reset_ev",
               "a0_m", "tox_m", "f_min_v_per_m", "gap_min_m", "gap_max_m", "t_ambient_k",
               "rth_k_per_w", "tau_th_s", "gap_noise_m_per_sqrt_s", "t_crit_k", "t_smooth_k",
               "r_series_ohm", "rho_ohm_m", "l0_m", "width_ref_m", "width_min_m", "width_max_m",
               "width_vel0_m_per_s", "ei_ev", "width_a_m", "width_len_m", "dissolution")
(I0, G0, V0, VEL0, GAMMA0, BETA, EA, EA_RESET, A0, TOX, FMIN, GMIN, GMAX, TAMB, RTH, TAU,
 NOISE, TCRIT, TSMOOTH, RSERIES, RHO, L0, WREF, WMIN, WMAX, WVEL0, EI, WA, WLEN, DISS
 ) = range(len(PARAM_NAMES))

# Compliance modes and model switches, passed as integers.
MODE_NONE, MODE_IDEAL, MODE_1T1R, MODE_TRANSISTOR = 0, 1, 2, 3
BISECTION_ITERS = 30  # 1T1R current by bisection (shared with the tensor path)
TINY = np.finfo(np.float64).tiny


def available() -> bool:
    return numba is not None


if numba is not None:
    _jit = njit(cache=True, fastmath=False, nogil=True)

    @_jit
    def _mix(x: Any) -> Any:  # splitmix64 finaliser: a good 64-bit hash
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))

    @_jit
    def _normal(key: Any, device: int, step: int, sub: int) -> float:
        """A standard normal from the counter (device, step, sub-step), Box-Muller."""
        c = _mix(key ^ _mix(np.uint64(device) * np.uint64(0x9E3779B97F4A7C15)
                            ^ _mix(np.uint64(step) << np.uint64(20) | np.uint64(sub))))
        d = _mix(c ^ np.uint64(0xD1B54A32D192ED03))
        u1 = ((c >> np.uint64(11)) + np.uint64(1)) * (1.0 / 9007199254740993.0)
        u2 = (d >> np.uint64(11)) * (1.0 / 9007199254740992.0)
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    @_jit
    def _asinh_pos(x: float) -> float:
        """asinh for x > 0 by one log (no cancellation there): libm's asinh is ~2x slower."""
        if x > 1e150:  # x * x would overflow
            return math.log(2.0 * x)
        return math.log(x + math.sqrt(x * x + 1.0))

    @_jit
    def _gap_voltage(v: float, ia: float, r: float, v0: float, guess: float,
                     cold: bool) -> tuple[float, float, float]:
        """(Vg, sinh(Vg / v0), ds/da) with V = Vg + r ia sinh(Vg / v0), by Newton (see
        physics.solve_gap_voltage); the last Newton step yields sinh almost for free, and ds/da
        extrapolates the next warm start. ``guess`` is a warm start for s = |Vg| / v0."""
        a = abs(v) / v0
        if a == 0.0:
            return 0.0, 0.0, 1.0
        b = r * ia / v0
        # both are upper bounds of the root; asinh costs a log, so warm starts skip it
        s = a / (1.0 + b)
        s = min(s, math.asinh(a / max(b, 1e-300))) if cold else min(s, guess)
        sinh_s = cosh_s = 0.0
        for _ in range(NEWTON_MAX_ITERS):
            e = math.exp(s)
            sinh_s, cosh_s = 0.5 * (e - 1.0 / e), 0.5 * (e + 1.0 / e)
            step = (s + b * sinh_s - a) / (1.0 + b * cosh_s)
            s = s - step
            sinh_s -= step * cosh_s  # first order: the step is tiny once converged
            if abs(step) <= NEWTON_STOP_STEP:
                break
        if s <= 0.0:
            return 0.0, 0.0, 0.0
        slope = 1.0 / (1.0 + b * cosh_s)  # ds/da: extrapolates the next warm start
        return (s * v0, sinh_s, slope) if v > 0 else (-s * v0, -sinh_s, slope)

    @_jit
    def _transistor_current(v: float, i_free: float, ia: float, r: float, v0: float,
                            icc: float, v_knee: float) -> float:
        """Current through cell + transistor at positive bias, by bisection on I."""
        lo = 0.0
        hi = min(max(i_free, 0.0), icc * (1 - 1e-12))
        for _ in range(BISECTION_ITERS):
            mid = 0.5 * (lo + hi)
            v_mid = v0 * math.asinh(mid / ia) + mid * r + v_knee * math.atanh(mid / icc)
            if v_mid > v:
                hi = mid
            else:
                lo = mid
        return 0.5 * (lo + hi)

    @_jit
    def _softplus(x: float) -> float:
        return max(x, 0.0) + math.log1p(math.exp(-abs(x)))

    @_jit
    def _drain_current(tr: Any, v_ds: float) -> float:
        """transistor.drain_current for one device (constants in TRANSISTOR_COLUMNS order)."""
        f_reverse = _softplus((tr[0] - v_ds) / (2.0 * tr[4]))
        return tr[1] * (tr[2] - f_reverse * f_reverse) * (1.0 + tr[3] * v_ds)

    @_jit
    def _access_transistor_current(v: float, ia: float, r: float, v0: float, tr: Any) -> float:
        """Current through cell + access transistor at positive bias, by bisection on V_DS
        (integrate._access_transistor_limit)."""
        lo, hi = 0.0, max(v, 0.0)
        for _ in range(TRANSISTOR_ITERS):
            mid = 0.5 * (lo + hi)
            i_mid = _drain_current(tr, mid)
            if mid + v0 * math.asinh(i_mid / ia) + i_mid * r > v:
                hi = mid
            else:
                lo = mid
        return _drain_current(tr, 0.5 * (lo + hi))

    @_jit
    def _device(j: int, p: Any, volts: Any, dts: Any, mode: int, icc: float, v_knee: float,
                tr: Any,
                max_gap_step: float, max_width_frac: float, max_substeps: int, fixed: int,
                grows: bool, dynamic_heat: bool, series: bool, has_rho: bool, noisy: bool,
                key: Any, state: Any, cur_out: Any, gap_out: Any, width_out: Any) -> int:
        """Integrate device ``j`` over the waveform; update ``state[j]``; return sub-steps."""
        gap, width, temp = state[j, 0], state[j, 1], state[j, 2]
        s_guess = 0.0
        substeps = 0
        i0, g0, v0 = p[I0], p[G0], p[V0]
        gmin, gmax, wmin, wmax = p[GMIN], p[GMAX], p[WMIN], p[WMAX]
        field_v = p[FMIN] * p[TOX]
        a_over_tox = p[A0] / p[TOX]
        w_coeff = p[WA] / p[WLEN]
        exp_gmin = math.exp(gmin / g0)
        r_coeff = p[RHO] / (math.pi / 4.0)
        # exp(-gap/g0) is recomputed only when the gap has moved: it rarely does
        gap_seen, e_gap = math.nan, 0.0
        a_seen, slope = 0.0, 0.0  # where the last gap voltage was solved, and ds/da there
        was_clamped = False
        for k in range(volts.shape[0]):
            v = volts[k]
            remaining = dts[k]
            h_fixed = dts[k] / fixed if fixed > 0 else 0.0
            if gap_out.shape[0] > 0:
                gap_out[j, k] = gap
            if width_out.shape[0] > 0:
                width_out[j, k] = width
            # the first sub-step measures the current; later ones only while time is left
            limit = 1 if dts[k] == 0.0 else (fixed if fixed > 0 else max_substeps)
            for it in range(limit):
                cold = k == 0 and it == 0
                # operating point: current, gap voltage, heating power
                if gap != gap_seen:
                    gap_seen, e_gap = gap, math.exp(-gap / g0)
                w_rel = width / p[WREF]
                ia = i0 * (w_rel * w_rel) * e_gap
                r_cf = r_coeff * (p[L0] - gap) / (width * width) if has_rho else 0.0
                r_total = r_cf + p[RSERIES]
                ideal_on = mode == MODE_IDEAL and v > 0
                clamped = False
                if ideal_on and was_clamped:
                    # still in compliance exactly when V exceeds what the cell needs to carry
                    # I_CC: checked first, as it usually holds, and it spares the solve
                    vg = v0 * _asinh_pos(icc / ia)
                    clamped = v > vg + icc * r_total
                if not clamped:
                    if series:
                        a_now = abs(v) / v0
                        vg, sinh_s, slope = _gap_voltage(
                            v, ia, r_total, v0, s_guess + (a_now - a_seen) * slope, cold)
                        s_guess, a_seen = abs(vg) / v0, a_now
                    else:
                        vg, sinh_s = v, math.sinh(v / v0)
                    i = ia * sinh_s
                    if ideal_on and i > icc:
                        clamped = True
                        vg = v0 * _asinh_pos(icc / ia)
                    elif mode == MODE_1T1R and v > 0:
                        i = _transistor_current(v, i, ia, r_total, v0, icc, v_knee)
                        vg = v0 * math.asinh(i / ia)
                    elif mode == MODE_TRANSISTOR and v > 0:
                        i = _access_transistor_current(v, ia, r_total, v0, tr)
                        vg = v0 * math.asinh(i / ia)
                if clamped:
                    i = icc
                was_clamped = clamped
                power = abs(vg * i)
                if has_rho:
                    power += i * i * r_cf
                if it == 0 and cur_out.shape[0] > 0:
                    cur_out[j, k] = i
                t_target = p[TAMB] + power * p[RTH]
                t_rate = temp if dynamic_heat else t_target
                inv_kt = 1.0 / (KB_EV_PER_K * t_rate)
                # gap rate: zero below the field threshold or against a bound
                g_nm = gap * 1e9
                gamma = p[GAMMA0] - p[BETA] * (g_nm * g_nm * g_nm)
                rg = 0.0
                if gamma * abs(vg) >= field_v:
                    u = min(max(gamma * a_over_tox * vg * inv_kt, -MAX_EXPONENT), MAX_EXPONENT)
                    # the gap opens exactly when u < u_turn: a gap held at the bound it is
                    # pushed against does not move, and needs no exponentials
                    u_turn = 0.5 * (p[EA] - p[EA_RESET]) * inv_kt
                    if not ((gap <= gmin and u > u_turn) or (gap >= gmax and u < u_turn)):
                        forward = math.exp(min(u - p[EA] * inv_kt, MAX_EXPONENT))
                        backward = math.exp(min(-u - p[EA_RESET] * inv_kt, MAX_EXPONENT))
                        rg = -0.5 * p[VEL0] * (forward - backward)
                        if (gap <= gmin and rg < 0) or (gap >= gmax and rg > 0):
                            rg = 0.0
                last = it == limit - 1  # takes whatever time is left of the step
                if last:
                    h = remaining
                elif fixed > 0:
                    h = min(h_fixed, remaining)
                else:
                    h = min(remaining, max_gap_step / max(abs(rg), TINY))
                if grows:
                    v_cell = vg + i * r_cf
                    rw = 0.0
                    if v_cell > 0 and width < wmax:
                        u = w_coeff * v_cell * inv_kt
                        closed = e_gap * exp_gmin  # exp(-(gap - gap_min) / g0)
                        rw = (p[WVEL0] * closed * math.exp(min(u - p[EI] * inv_kt, MAX_EXPONENT))
                              * (1.0 - math.exp(-2.0 * u)))
                    if fixed == 0 and not last:
                        h = min(h, max_width_frac * width / max(rw, TINY))
                    opened = max(min(gap + rg * h, gmax) - gap, 0.0)
                    width = wmin + (width + rw * h - wmin) * (
                        math.exp(-p[DISS] * opened / p[L0]) if opened > 0 else 1.0)
                    width = min(max(width, wmin), wmax)
                gap = gap + rg * h
                if noisy:
                    sigma = p[NOISE] / (1.0 + math.exp((p[TCRIT] - t_rate) / p[TSMOOTH]))
                    gap += sigma * math.sqrt(h) * _normal(key, j, k, it)
                gap = min(max(gap, gmin), gmax)
                if dynamic_heat:
                    temp = t_target + (temp - t_target) * math.exp(-h / p[TAU])
                else:
                    temp = t_target
                remaining -= h
                substeps += 1
                if remaining <= 0 and fixed == 0:
                    break
        state[j, 0], state[j, 1], state[j, 2] = gap, width, temp
        return substeps

    @_jit
    def integrate(start: int, stop: int, params: Any, volts: Any, dts: Any, mode: int,
                  icc: Any, v_knee: float, transistor: Any, max_gap_step: float,
                  max_width_frac: float, max_substeps: int, fixed: int, grows: bool,
                  dynamic_heat: bool, series: bool,
                  has_rho: bool, noisy: bool, key: Any, state: Any, cur_out: Any, gap_out: Any,
                  width_out: Any, counts: Any) -> None:
        """Devices ``start:stop`` over the whole waveform (releases the GIL, so chunks of
        devices run in parallel on Python threads)."""
        for j in range(start, stop):
            counts[j] = _device(j, params[j], volts, dts, mode, icc[j], v_knee, transistor[j],
                                max_gap_step,
                                max_width_frac, max_substeps, fixed, grows, dynamic_heat,
                                series, has_rho, noisy, key, state, cur_out, gap_out,
                                width_out)
