"""Fit the gap + filament model to measured DC sweeps: parameters per device, then variability.

Every measured cycle (one SET/RESET sweep at a known compliance current) gets its own
parameters, fitted with the cycles measured before it on the same device and compliance (a
chain: the state one cycle leaves is where the next starts). The estimates are then pooled: a
device's parameters are the mean of its cycles' (in log space),
their spread across devices gives the device-to-device sigmas, their spread across the cycles
of one device the cycle-to-cycle sigmas (both log-normal, as :mod:`birram.rram.variability`
draws them).

What is fitted, and why only that (identifiability of the ``filament`` set under DC sweeps at
1e4 V/s over 10 uA - 1 mA, measured by ``python benchmarks/fit_identifiability.py``; see
``docs/fitting.md``):

- ``f_min_v_per_m``, the field threshold, sets both switching voltages (x0.74 -> x1.35 moves
  V_set 0.56 -> 0.91 V and V_reset -0.28 -> -0.47 V at 100 uA). Log current is a step function
  of it (a switch lands on one voltage of the grid or the next), so it is fitted apart, by
  matching the measured V_set with a batched scan (all chains x candidates in one simulation).
- ``i0_a`` (current scale), ``v0_v`` (I-V nonlinearity) and ``dissolution`` (how far RESET
  thins the filament: the high-resistance state and its dependence on I_CC) change log10 |I|
  smoothly in both states, and no two of them move it alike: they are fitted by
  ``scipy.optimize.least_squares`` on log10 |I|, with the points at the two switching events
  left out. ``i0_a`` also moves V_reset (x0.74 -> x1.35: -0.32 -> -0.37 V), which the least
  squares cannot see (a step function again): each round first scans it to match the measured
  V_reset, as for the threshold.

Held at the base set's values: ``rho_ohm_m`` (its effect is parallel to ``i0_a``'s, r = 0.97:
the compliance fixes R_LRS whatever the resistivity), ``g0_m`` (parallel to ``dissolution``'s,
r = -0.96), ``width_vel0_m_per_s`` and ``ei_ev`` (parallel to each other, r = -0.94),
``width_min_m`` and ``rth_k_per_w`` (weak: sensitivities 5.8 and 4.9 against 13-26 for the
fitted ones), ``gap_max_m``, ``gamma0``, ``beta``, ``tox_m`` and ``a0_m`` (they set the
threshold through the field enhancement, which ``f_min_v_per_m`` already fits, and
``gap_max_m`` the high-resistance current with ``i0_a``). Visible but left fixed:
``vel0_m_per_s``, ``ea_reset_ev``, ``l0_m`` and ``ei_ev``; a spread of theirs in real devices
ends up in the fitted parameters.

A chain is simulated from a fresh high-resistance state through one unrecorded warm-up cycle
(its own free parameters: what came before the first recorded cycle is not known) and then its
cycles, on the measured voltage sequence, with an ideal compliance at the measured I_CC. The
threshold scan runs all chains x candidates in one batch; the least squares runs chain by
chain, each Jacobian (all cycles x parameters perturbed) as one batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import least_squares

from birram.errors import ConfigError, DataError
from birram.rram.drive import Compliance, Waveform
from birram.rram.integrate import IntegratorOptions, initial_state, simulate
from birram.rram.measured import MeasuredSweep
from birram.rram.measured_features import FeatureOptions, measured_features
from birram.rram.param_file import ParamSet
from birram.rram.params import FILAMENT, DeviceParams, validate_params
from birram.rram.physics import TensorParams
from birram.rram.variability import Variability

FIT_PARAMS = ("i0_a", "v0_v", "dissolution", "f_min_v_per_m")
SMOOTH_PARAMS = ("i0_a", "v0_v", "dissolution")  # least squares on log current
THRESHOLD_PARAM = "f_min_v_per_m"  # matched to the measured V_set
MIN_POINTS = 20
JACOBIAN_CLIP = 5.0  # decades of current per unit of log parameter: steeper is a switch moving


@dataclass(frozen=True)
class FitOptions:
    base: DeviceParams = FILAMENT  # starting point, and the value of every parameter not fitted
    current_floor_a: float = 1e-10  # |I| below this is the instrument's noise: clamped to it
    sweep_rate_v_per_s: float = 1e4  # for sweeps without a time column
    rounds: int = 3  # threshold scan + least squares, repeated
    max_nfev: int = 60  # least-squares evaluations per chain and round
    mask_points: int = 2  # points left out on each side of a switching event
    tolerance: float = 1e-8  # least squares ftol, xtol and gtol
    match_reset: bool = True  # start each round's i0_a where the simulated V_reset matches
    loss: str = "linear"  # least squares loss (scipy names); linear recovered i0_a best
    bound_ln: float = 2.5  # fitted values stay within base * exp(+-bound_ln)
    c2c_rho: float = 0.7  # AR(1) correlation over cycles (not estimable from a few cycles)
    read_noise_sigma: float = 0.02  # the simulator's read noise (hidden in instrument noise)
    threads: int | None = None

    def validated(self) -> FitOptions:
        validate_params(self.base)
        if not self.base.has_filament:
            raise ConfigError(f"fitting needs a gap + filament parameter set as the base "
                              f"(e.g. filament), got {self.base.name}")
        for name in ("current_floor_a", "sweep_rate_v_per_s", "bound_ln", "tolerance"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"fit {name} must be a positive number, got {value!r}")
        for name, low, high in (("rounds", 1, 10), ("max_nfev", 1, 1000),
                                ("mask_points", 0, 50)):
            value = getattr(self, name)
            if not (isinstance(value, int) and low <= value <= high):
                raise ConfigError(f"fit {name} must be an integer in [{low}, {high}], "
                                  f"got {value!r}")
        if self.loss not in ("linear", "soft_l1", "huber", "cauchy", "arctan"):
            raise ConfigError(f"fit loss must be linear, soft_l1, huber, cauchy or arctan, "
                              f"got {self.loss!r}")
        if not 0 <= self.c2c_rho < 1:
            raise ConfigError(f"fit c2c_rho must lie in [0, 1), got {self.c2c_rho}")
        return self


@dataclass(frozen=True, eq=False)
class PreparedSweep:
    """One measured cycle, ready for fitting."""

    source: str
    device: str
    chain: str  # device and compliance: the cycles measured one after the other
    cycle: int
    icc_a: float
    volts: np.ndarray
    dt_s: np.ndarray
    log_i: np.ndarray  # log10 max(|I|, floor)
    weight: np.ndarray  # 1 where the point enters the least squares, 0 where left out
    v_set_v: float
    step_v: float
    set_index: int  # where the SET jump and the RESET peak are, in measurement order
    reset_index: int


def _cycle_number(cycle: int | str | None, fallback: int) -> int:
    if isinstance(cycle, int):
        return cycle
    try:
        return int(float(str(cycle)))
    except ValueError:
        return fallback


def prepare_sweeps(sweeps: Sequence[MeasuredSweep], opts: FitOptions
                   ) -> tuple[list[PreparedSweep], list[str]]:
    """Checked, cleaned cycles; and a note for each cycle left out (it did not switch)."""
    prepared, skipped = [], []
    feature_opts = FeatureOptions(current_floor_a=opts.current_floor_a)
    for k, sweep in enumerate(sweeps):
        where = f"{sweep.source or 'sweep'}" + (f" cycle {sweep.cycle}" if sweep.cycle else "")
        v = np.asarray(sweep.voltage_v, dtype=np.float64)
        i = np.asarray(sweep.current_a, dtype=np.float64)
        if v.size < MIN_POINTS or not (np.isfinite(v).all() and np.isfinite(i).all()):
            raise DataError(f"{where}: expected at least {MIN_POINTS} finite points, got "
                            f"{v.size}")
        if not ((v > 0).any() and (v < 0).any()):
            raise DataError(f"{where}: expected a full cycle (a positive SET and a negative "
                            f"RESET half); this sweep has one polarity only")
        if sweep.compliance_a is None or not sweep.compliance_a > 0:
            raise DataError(f"{where}: the compliance current is not recorded; fitting needs "
                            f"it (a 'compliance' column or the setup's Compliance line)")
        if sweep.time_s is not None:
            t = np.asarray(sweep.time_s, dtype=np.float64) - float(sweep.time_s[0])
            dt = np.diff(t, prepend=0.0)
            if (dt < 0).any():
                raise DataError(f"{where}: the time column must not decrease")
        else:
            dt = np.abs(np.diff(v, prepend=v[0])) / opts.sweep_rate_v_per_s
        feats = measured_features(sweep, options=feature_opts)
        if not feats.switched:
            skipped.append(f"{where}: did not switch (R_HRS/R_LRS or SET jump too small)")
            continue
        log_i = np.log10(np.maximum(np.abs(i), opts.current_floor_a))
        weight = np.ones_like(v)
        events = (_set_index(v, feats.v_set_v), _reset_index(v, log_i))
        for event in events:
            weight[max(0, event - opts.mask_points):event + opts.mask_points + 2] = 0.0
        steps = np.abs(np.diff(v))
        device = sweep.device or Path(sweep.source).stem or f"device{k}"
        prepared.append(PreparedSweep(
            source=sweep.source, device=device, chain=f"{device}@{sweep.compliance_a:.6g}",
            cycle=_cycle_number(sweep.cycle, k), icc_a=float(sweep.compliance_a), volts=v,
            dt_s=dt, log_i=log_i, weight=weight, v_set_v=float(feats.v_set_v),
            step_v=float(np.median(steps[steps > 0])), set_index=events[0],
            reset_index=events[1]))
    return prepared, skipped


def _set_index(v: np.ndarray, v_set: float) -> int:
    rising = np.flatnonzero((np.diff(v, prepend=v[0]) >= 0) & (v > 0))
    return int(rising[np.argmin(np.abs(v[rising] - v_set))])


def _reset_index(v: np.ndarray, log_i: np.ndarray) -> int:
    return int(np.argmax(np.where(v < 0, log_i, -np.inf)))


# ----------------------------------------------------------------------------- simulation

def _chains(sweeps: Sequence[PreparedSweep]) -> list[list[list[int]]]:
    """Cycles grouped into chains (one device at one compliance, in cycle order), and chains
    into batches that share the voltage sequence and the number of cycles."""
    chains: dict[str, list[int]] = {}
    for k, s in enumerate(sweeps):
        chains.setdefault(s.chain, []).append(k)
    batches: dict[tuple, list[list[int]]] = {}
    for members in chains.values():
        members.sort(key=lambda k: sweeps[k].cycle)
        first = sweeps[members[0]]
        key = (len(members), first.volts.size, np.round(first.volts, 6).tobytes(),
               np.round(first.dt_s, 12).tobytes())
        same = all(np.array_equal(np.round(sweeps[k].volts, 6), np.round(first.volts, 6))
                   for k in members)
        if not same:  # a chain whose cycles differ in voltage: each cycle on its own
            for k in members:
                one = (1, sweeps[k].volts.size, np.round(sweeps[k].volts, 6).tobytes(),
                       np.round(sweeps[k].dt_s, 12).tobytes())
                batches.setdefault(one, []).append([k])
            continue
        batches.setdefault(key, []).append(members)
    return list(batches.values())


def simulate_log_current(base: DeviceParams, log_values: np.ndarray, icc_a: np.ndarray,
                         volts: np.ndarray, dt_s: np.ndarray, floor_a: float,
                         threads: int | None = None) -> np.ndarray:
    """log10 |I| ``[m, cycles, points]`` of consecutive cycles for ``m`` devices, each cycle
    with its own parameters, at compliances ``icc_a[m]``. ``log_values[m, 1 + cycles,
    len(FIT_PARAMS)]`` (natural log) starts with the parameters of one unrecorded warm-up
    cycle: the state the first recorded cycle starts from is whatever an earlier cycle left."""
    m, slots, _ = log_values.shape
    cycles = slots - 1
    times = torch.from_numpy(np.cumsum(dt_s))
    wave = Waveform(times, torch.from_numpy(volts), torch.zeros(volts.size, dtype=torch.int8))
    compliance = Compliance(torch.from_numpy(icc_a.astype(np.float64)))
    options = IntegratorOptions(threads=threads)

    def params(c: int) -> TensorParams:
        return TensorParams(base, {name: torch.from_numpy(np.exp(log_values[:, c, j]).copy())
                                   for j, name in enumerate(FIT_PARAMS)})

    state = initial_state(params(0), m)
    _, state = simulate(params(0), wave, compliance, state, options=options)
    out = np.empty((m, cycles, volts.size))
    for c in range(cycles):
        trace, state = simulate(params(c + 1), wave, compliance, state, options=options)
        assert trace.current_a is not None
        out[:, c] = np.nan_to_num(trace.current_a.double().numpy().T, nan=0.0)
    return np.log10(np.maximum(np.abs(out), floor_a))


def simulated_set_voltage(volts: np.ndarray, log_i: np.ndarray) -> np.ndarray:
    """V_set of each row: the voltage before the largest conductance rise on the SET ramp
    (the definition :func:`birram.rram.measured_features.set_jump` uses)."""
    log_g = log_i - np.log10(np.maximum(np.abs(volts), 1e-9))
    rising = (volts[1:] > volts[:-1]) & (volts[:-1] > 0)
    jump = np.where(rising, log_g[..., 1:] - log_g[..., :-1], -np.inf)
    return volts[np.argmax(jump, axis=-1)]


# ----------------------------------------------------------------------------- fitting

@dataclass
class _Batch:
    """Chains sharing one voltage sequence and cycle count, with their current estimates."""

    sweeps: list[PreparedSweep]
    index: np.ndarray  # [chains, cycles] position of each cycle in the prepared list
    theta: np.ndarray  # [chains, 1 + cycles, len(FIT_PARAMS)] natural log; 0: the warm-up
    fit_var: np.ndarray  # same shape: variance of each estimate (log)
    rms: np.ndarray  # [chains, cycles] residual RMS (log10 |I|, points that enter the fit)
    unconverged: int = 0  # least-squares problems stopped by max_nfev

    def at(self, c: int, k: int) -> PreparedSweep:
        return self.sweeps[self.index[c, k]]

    @property
    def icc(self) -> np.ndarray:
        return np.array([self.at(c, 0).icc_a for c in range(self.index.shape[0])])

    @property
    def volts(self) -> np.ndarray:
        return self.at(0, 0).volts

    def chain(self, c: int) -> _Batch:
        """One chain as a batch of its own (a view: estimates are written back)."""
        return _Batch(self.sweeps, self.index[c:c + 1], self.theta[c:c + 1],
                      self.fit_var[c:c + 1], self.rms[c:c + 1].copy())

    def stack(self, name: str) -> np.ndarray:
        return np.stack([[getattr(self.at(c, k), name) for k in range(self.index.shape[1])]
                         for c in range(self.index.shape[0])])


def _simulate(batch: _Batch, theta: np.ndarray, icc: np.ndarray, opts: FitOptions) -> np.ndarray:
    return simulate_log_current(opts.base, theta, icc, batch.volts, batch.at(0, 0).dt_s,
                                opts.current_floor_a, opts.threads)


def simulated_reset_voltage(volts: np.ndarray, log_i: np.ndarray) -> np.ndarray:
    """V_reset of each row: the voltage of the largest |I| on the RESET half."""
    return volts[np.argmax(np.where(volts < 0, log_i, -np.inf), axis=-1)]


def _switch_feature(feature: str, volts: np.ndarray, log_i: np.ndarray) -> np.ndarray:
    """V_set, or |V_reset|: both rise with the parameter scanned for them."""
    if feature == "v_set":
        return simulated_set_voltage(volts, log_i)
    return -simulated_reset_voltage(volts, log_i)


def _measured_feature(feature: str, sweep: PreparedSweep) -> float:
    return sweep.v_set_v if feature == "v_set" else -float(sweep.volts[sweep.reset_index])


def _fit_threshold(batch: _Batch, opts: FitOptions, half_width: float, points: int,
                   param: str = THRESHOLD_PARAM, feature: str = "v_set") -> None:
    """Scan ``param`` of each cycle in turn (earlier cycles at their estimates); keep the
    middle of the range whose simulated ``feature`` (V_set, or |V_reset| for the current
    scale) equals the measured one."""
    j = FIT_PARAMS.index(param)
    n, cycles = batch.index.shape
    offsets = np.linspace(-half_width, half_width, points)
    spacing = offsets[1] - offsets[0]
    for k in range(cycles):
        cand = np.repeat(batch.theta[:, :k + 2], points, axis=0)
        cand[:, k + 1, j] += np.tile(offsets, n)
        if k == 0:  # the warm-up cycle shares the first cycle's value
            cand[:, 0, j] = cand[:, 1, j]
        log_i = _simulate(batch, cand, np.repeat(batch.icc, points), opts)[:, k]
        simulated = _switch_feature(feature, batch.volts, log_i).reshape(n, points)
        for c in range(n):
            sweep = batch.at(c, k)
            target = _measured_feature(feature, sweep)
            x = batch.theta[c, k + 1, j] + offsets
            y = np.maximum.accumulate(simulated[c])
            hit = np.abs(y - target) < 0.25 * sweep.step_v
            if hit.any():
                lo, hi = x[hit].min() - 0.5 * spacing, x[hit].max() + 0.5 * spacing
            else:
                m = int(np.searchsorted(y, target))
                lo = hi = x[0] if m == 0 else x[-1] if m == points else None
                if lo is None:
                    frac = (target - y[m - 1]) / max(y[m] - y[m - 1], 1e-12)
                    lo = hi = x[m - 1] + frac * (x[m] - x[m - 1])
                    lo, hi = lo - 0.5 * spacing, hi + 0.5 * spacing
            batch.theta[c, k + 1, j] = 0.5 * (lo + hi)
            batch.fit_var[c, k + 1, j] = (hi - lo) ** 2 / 12.0 if hi > lo else half_width ** 2
    batch.theta[:, 0, j] = batch.theta[:, 1, j]
    _clip(batch.theta, opts)


def _clip(theta: np.ndarray, opts: FitOptions) -> None:
    centre = _base_log(opts)
    np.clip(theta, centre - opts.bound_ln + 1e-6, centre + opts.bound_ln - 1e-6, out=theta)


def _base_log(opts: FitOptions) -> np.ndarray:
    return np.log([getattr(opts.base, name) for name in FIT_PARAMS])


def _fit_smooth(batch: _Batch, opts: FitOptions) -> None:
    """Least squares chain by chain: each has its own trust region, so one chain's hard step
    does not hold back the others (a joint problem converged visibly worse)."""
    for c in range(batch.index.shape[0]):
        one = batch.chain(c)
        batch.unconverged += not _fit_smooth_joint(one, opts)
        batch.rms[c] = one.rms[0]


def _fit_smooth_joint(batch: _Batch, opts: FitOptions, step: float = 0.02) -> bool:
    """Least squares on log10 |I| for the smooth parameters of every cycle of every chain at
    once (the warm-up cycle's too). A cycle's parameters shape its own sweep and, through the
    state it leaves, the later cycles of its chain: the Jacobian is block lower-triangular per
    chain and zero across chains, so each evaluation is one simulated batch and each Jacobian
    one batch of ``chains x (slots x q + 1)`` devices. Finite differences across a switching
    event (a switch moving by one voltage step) are not slopes: entries steeper than
    ``JACOBIAN_CLIP`` are dropped."""
    cols = [FIT_PARAMS.index(p) for p in SMOOTH_PARAMS]
    n, slots, _ = batch.theta.shape
    cycles = slots - 1
    q = len(cols)
    meas = batch.stack("log_i")  # [n, cycles, points]
    weight = batch.stack("weight")
    points = meas.shape[-1]
    per_chain = slots * q
    icc = batch.icc
    # residual (chain, cycle k', point) depends on parameters (chain, slot k, j) with k <= k'+1
    ch, kp, pt, k, jj = np.meshgrid(np.arange(n), np.arange(cycles), np.arange(points),
                                    np.arange(slots), np.arange(q), indexing="ij")
    keep = k <= kp + 1
    rows = ((ch * cycles + kp) * points + pt)[keep]
    cols_idx = (ch * per_chain + k * q + jj)[keep]

    def full(x: np.ndarray) -> np.ndarray:
        theta = batch.theta.copy()
        theta[:, :, cols] = x.reshape(n, slots, q)
        return theta

    def fun(x: np.ndarray) -> np.ndarray:
        return ((_simulate(batch, full(x), icc, opts) - meas) * weight).ravel()

    def jac(x: np.ndarray) -> sparse.csr_matrix:
        theta = full(x)
        stack = np.repeat(theta[:, None], per_chain + 1, axis=1)  # [n, 1 + slots q, slots, P]
        for k_ in range(slots):
            for a, c in enumerate(cols):
                stack[:, 1 + k_ * q + a, k_, c] += step
        sims = _simulate(batch, stack.reshape(-1, slots, theta.shape[-1]),
                         np.repeat(icc, per_chain + 1), opts
                         ).reshape(n, per_chain + 1, cycles, points)
        d = (sims[:, 1:] - sims[:, :1]) * weight[:, None] / step  # [n, slots q, cycles, pts]
        d = np.where(np.abs(d) > JACOBIAN_CLIP, 0.0, d)
        d = d.reshape(n, slots, q, cycles, points).transpose(0, 3, 4, 1, 2)  # n,k',pt,k,j
        return sparse.csr_matrix((d[keep], (rows, cols_idx)),
                                 shape=(n * cycles * points, n * per_chain))

    centre = np.tile(_base_log(opts)[cols], n * slots)
    result = least_squares(fun, batch.theta[:, :, cols].ravel(), jac=jac,
                           bounds=(centre - opts.bound_ln, centre + opts.bound_ln),
                           method="trf", loss=opts.loss, f_scale=0.05, x_scale="jac",
                           max_nfev=opts.max_nfev, tr_solver="lsmr", ftol=opts.tolerance,
                           xtol=opts.tolerance, gtol=opts.tolerance)
    batch.theta[:, :, cols] = result.x.reshape(n, slots, q)
    r = result.fun.reshape(n, cycles, points)
    used = weight.sum(-1)
    batch.rms = np.sqrt((r ** 2).sum(-1) / np.maximum(used, 1))
    jmat = sparse.csr_matrix(result.jac)
    for c in range(n):
        block = jmat[c * cycles * points:(c + 1) * cycles * points,
                     c * per_chain:(c + 1) * per_chain].toarray()
        s2 = float((r[c] ** 2).sum() / max(used[c].sum() - per_chain, 1))
        try:
            var = np.diag(np.linalg.pinv(block.T @ block)) * s2
        except np.linalg.LinAlgError:
            var = np.full(per_chain, np.inf)
        batch.fit_var[c][:, cols] = np.clip(var, 0.0, None).reshape(slots, q)
    return bool(result.status > 0)  # 0: stopped at max_nfev


@dataclass(frozen=True)
class FitResult:
    """Per-cycle and per-device estimates, the variability, and the parameter set."""

    param_set: ParamSet
    cycles: list[dict[str, Any]]
    devices: dict[str, dict[str, float]]
    sigmas: dict[str, dict[str, float]]
    skipped: list[str]
    options: FitOptions = field(repr=False)
    unconverged: int = 0  # chain fits (x rounds) stopped by max_nfev rather than converging
    simulated: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    prepared: list[PreparedSweep] = field(default_factory=list, repr=False)


def fit_sweeps(sweeps: Sequence[MeasuredSweep], options: FitOptions | None = None) -> FitResult:
    """Fit every cycle, pool them by device, and build the parameter set."""
    opts = (options or FitOptions()).validated()
    prepared, skipped = prepare_sweeps(sweeps, opts)
    if not prepared:
        raise DataError(f"none of the {len(sweeps)} sweep(s) switched; nothing to fit"
                        + (f" ({skipped[0]})" if skipped else ""))
    theta = np.zeros((len(prepared), len(FIT_PARAMS)))
    fit_var = np.zeros_like(theta)
    rms = np.zeros(len(prepared))
    simulated: dict[int, np.ndarray] = {}
    unconverged = 0
    with torch.inference_mode():
        for chains in _chains(prepared):
            index = np.array(chains)
            shape = (index.shape[0], index.shape[1] + 1, len(FIT_PARAMS))
            batch = _Batch(prepared, index, np.broadcast_to(_base_log(opts), shape).copy(),
                           np.zeros(shape), np.zeros(index.shape))
            for r in range(opts.rounds):
                _fit_threshold(batch, opts, 0.5 / 3 ** r, 21)
                if opts.match_reset:
                    _fit_threshold(batch, opts, 0.5 / 3 ** r, 21, "i0_a", "v_reset")
                _fit_smooth(batch, opts)
            unconverged += batch.unconverged
            final = _simulate(batch, batch.theta, batch.icc, opts)
            for c, k in np.ndindex(index.shape):
                at = index[c, k]
                theta[at], fit_var[at] = batch.theta[c, k + 1], batch.fit_var[c, k + 1]
                rms[at] = batch.rms[c, k]
                simulated[at] = final[c, k]
    devices, sigmas = pool(prepared, theta, fit_var, opts.c2c_rho)
    cycles = [{"source": s.source, "device": s.device, "cycle": s.cycle, "icc_a": s.icc_a,
               "params": {p: float(np.exp(theta[k, j])) for j, p in enumerate(FIT_PARAMS)},
               "residual_rms_log10": float(rms[k])} for k, s in enumerate(prepared)]
    param_set = build_param_set(devices, sigmas, opts, len(prepared))
    return FitResult(param_set, cycles, devices, sigmas, skipped, opts, unconverged, simulated,
                     prepared)


def _pair_correlation(cycles: Sequence[tuple[str, int]], rho: float) -> float:
    """Mean correlation of the cycle-to-cycle factors over distinct pairs of one device's
    cycles: AR(1) within a chain (rho^lag), independent across chains."""
    n = len(cycles)
    if n < 2:
        return 0.0
    total = 0.0
    for a in range(n):
        for b in range(a + 1, n):
            if cycles[a][0] == cycles[b][0]:
                total += rho ** abs(cycles[a][1] - cycles[b][1])
    return total / (n * (n - 1) / 2)


def pool(sweeps: Sequence[PreparedSweep], theta: np.ndarray, fit_var: np.ndarray,
         rho: float) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Device parameters (geometric mean over its cycles) and log-normal sigmas.

    Within a device, the sample variance of a parameter's log over its cycles estimates
    ``sigma_c2c^2 (1 - mean pair correlation) + fit variance``: the AR(1) correlation makes
    consecutive cycles alike, so the raw spread underestimates sigma_c2c; the fit variance
    (from each cycle's Jacobian, or the V_set quantisation) would inflate it. Across devices,
    the variance of device means is ``sigma_d2d^2`` plus what cycle-to-cycle spread and fit
    error leave in a mean of a few cycles. Both are corrected and floored at zero.
    """
    names = sorted({s.device for s in sweeps})
    members = {d: [k for k, s in enumerate(sweeps) if s.device == d] for d in names}
    means = np.stack([theta[members[d]].mean(0) for d in names])
    within, dof, fit_within, corr_w = np.zeros(theta.shape[1]), 0, np.zeros(theta.shape[1]), 0.0
    mean_leftover = np.zeros(theta.shape[1])  # c2c weight left in a device mean (x sigma^2)
    mean_fit = np.zeros(theta.shape[1])
    for d in names:
        k = members[d]
        chain = [(sweeps[i].chain, sweeps[i].cycle) for i in k]
        c = _pair_correlation(chain, rho)
        n = len(k)
        if n > 1:
            within += ((theta[k] - theta[k].mean(0)) ** 2).sum(0)
            fit_within += fit_var[k].sum(0) * (n - 1) / n
            corr_w += (n - 1) * (1 - c)
            dof += n - 1
        # variance of a mean of n correlated draws: sigma^2 (1 + (n - 1) c) / n
        mean_leftover += (1 + (n - 1) * c) / n
        mean_fit += fit_var[k].mean(0) / n
    mean_leftover /= len(names)
    mean_fit /= len(names)
    if dof > 0 and corr_w > 0:
        c2c_var = np.clip((within - fit_within) / corr_w, 0.0, None)
    else:
        c2c_var = np.zeros(theta.shape[1])
    if len(names) > 1:
        between = means.var(0, ddof=1)
        d2d_var = np.clip(between - c2c_var * mean_leftover - mean_fit, 0.0, None)
    else:
        d2d_var = np.zeros(theta.shape[1])
    devices = {d: {p: float(np.exp(means[a, j])) for j, p in enumerate(FIT_PARAMS)}
               for a, d in enumerate(names)}
    sigmas = {"d2d": {p: float(np.sqrt(d2d_var[j])) for j, p in enumerate(FIT_PARAMS)},
              "c2c": {p: float(np.sqrt(c2c_var[j])) for j, p in enumerate(FIT_PARAMS)},
              "median_log": {p: float(np.median(means[:, j])) for j, p in enumerate(FIT_PARAMS)}}
    return devices, sigmas


def build_param_set(devices: dict[str, dict[str, float]], sigmas: dict[str, dict[str, float]],
                    opts: FitOptions, n_cycles: int) -> ParamSet:
    """The population's median device, and its sigmas, as a parameter set."""
    values = {p: float(np.exp(np.median([np.log(d[p]) for d in devices.values()])))
              for p in FIT_PARAMS}
    params = validate_params(opts.base.with_(name="fitted", **values))
    variability = Variability(
        d2d=tuple(sorted(sigmas["d2d"].items())), c2c=tuple(sorted(sigmas["c2c"].items())),
        c2c_rho=opts.c2c_rho, read_noise_sigma=opts.read_noise_sigma).validated(params)
    provenance = {"base": opts.base.name, "fitted": list(FIT_PARAMS), "devices": len(devices),
                  "cycles": n_cycles, "c2c_rho": "held fixed", "method": "birram fit"}
    return ParamSet(params, variability, provenance)
