"""The simulator's cycle features (R_LRS, R_HRS, V_set, V_reset, I_reset) from measured sweeps.

A DC cycle is split by voltage sign into a SET branch and a RESET branch, and each branch into
its outgoing leg (0 -> peak) and return leg (peak -> 0). The resistances are read where the
simulator reads them: R_LRS on the SET return leg (the state SET left), R_HRS on the RESET return
leg (the state RESET left), both at ``|V| = v_read``. Measured data are cleaned first: currents
below the instrument floor are set to it, repeated voltages on a leg are merged, each leg is
sorted by ``|V|`` and log ``|I|`` is median-smoothed (which keeps the SET jump sharp).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import medfilt

from birram.errors import ConfigError, DataError
from birram.rram.features import CURRENT_FLOOR_A
from birram.rram.measured import MeasuredSweep


@dataclass(frozen=True)
class FeatureOptions:
    v_read: float = 0.1  # |V| at which both resistances are read
    set_polarity: int = 1  # +1: SET at positive voltage, RESET at negative
    current_floor_a: float = 1e-12  # instrument resolution: smaller |I| is noise
    smooth_points: int = 5  # median window on log |I| (odd; 1 = none)
    read_window: float = 0.5  # fit log |I| over |V| in v_read * (1 -+ read_window)
    min_ratio: float = 2.0  # R_HRS / R_LRS below this: the cycle did not switch
    min_jump: float = 2.0  # largest one-step conductance jump below this factor: no SET

    def __post_init__(self) -> None:
        if self.set_polarity not in (1, -1):
            raise ConfigError(f"set_polarity must be +1 or -1, got {self.set_polarity!r}")
        if self.smooth_points < 1 or self.smooth_points % 2 == 0:
            raise ConfigError(f"smooth_points must be a positive odd number, "
                              f"got {self.smooth_points!r}")
        positive = ("v_read", "current_floor_a", "read_window", "min_ratio", "min_jump")
        for name in positive:
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True, eq=False)
class Leg:
    """Points of one leg sorted by ``|V|`` ascending: log10 |I| as measured (repeats merged)
    and median-smoothed."""

    abs_v: np.ndarray
    log10_i: np.ndarray
    raw_log10_i: np.ndarray


@dataclass(frozen=True, eq=False)
class MeasuredFeatures:
    """The features of one measured cycle (NaN where the sweep lacks the branch they need)."""

    r_lrs_ohm: float
    r_hrs_ohm: float
    v_set_v: float
    v_reset_v: float
    i_reset_a: float
    i_set_max_a: float
    switched: bool
    source: str = ""
    device: str | None = None
    cycle: int | str | None = None
    compliance_a: float | None = None
    # RESET half as (|V| path length, log10 |I|): what the trace view resamples
    reset_path_v: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    reset_log10_i: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    reset_span_v: float = 0.0  # 2 x the RESET peak |V|: the length of the whole half

    def feature_row(self) -> np.ndarray:
        """``[log R_LRS, log R_HRS, V_set, V_reset, log I_reset]`` as in the simulated dataset."""
        return np.array([np.log(self.r_lrs_ohm), np.log(self.r_hrs_ohm), self.v_set_v,
                         self.v_reset_v, np.log(max(self.i_reset_a, CURRENT_FLOOR_A))])

    def trace(self, points: int) -> np.ndarray:
        """log10 |I| at ``points`` evenly spaced positions along the RESET half (0 -> peak -> 0),
        by voltage travelled, so missing points do not shift the positions."""
        if self.reset_path_v.size == 0:
            return np.full(points, np.nan)
        pos = np.linspace(0.0, self.reset_span_v, points)
        return np.interp(pos, self.reset_path_v, self.reset_log10_i)


def split_branches(sweep: MeasuredSweep, polarity: int = 1) -> tuple[MeasuredSweep, MeasuredSweep]:
    """(SET points, RESET points) of a full cycle, by the sign of the voltage (0 V dropped)."""
    v, i = sweep.voltage_v, sweep.current_a
    set_mask, reset_mask = polarity * v > 0, polarity * v < 0

    def pick(mask: np.ndarray) -> MeasuredSweep:
        return MeasuredSweep(v[mask], i[mask], None, sweep.source, sweep.device, sweep.cycle,
                             sweep.compliance_a)

    return pick(set_mask), pick(reset_mask)


def branch_legs(volts: np.ndarray, current: np.ndarray,
                opts: FeatureOptions) -> tuple[Leg | None, Leg | None]:
    """Outgoing and return leg of one branch, split at the point of largest ``|V|``."""
    keep = (volts != 0) & np.isfinite(volts) & np.isfinite(current)
    abs_v, abs_i = np.abs(volts[keep]), np.maximum(np.abs(current[keep]), opts.current_floor_a)
    if abs_v.size == 0:
        return None, None
    peak = int(np.argmax(abs_v))
    return _leg(abs_v[: peak + 1], abs_i[: peak + 1], opts), _leg(abs_v[peak:], abs_i[peak:], opts)


def _leg(abs_v: np.ndarray, abs_i: np.ndarray, opts: FeatureOptions) -> Leg | None:
    if abs_v.size < 2:
        return None
    # Sort by |V| and merge repeated voltages into their median current.
    order = np.argsort(abs_v, kind="stable")
    sorted_v, log_i = abs_v[order], np.log10(abs_i[order])
    levels, starts, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    merged = log_i[starts]
    for k in np.flatnonzero(counts > 1):
        merged[k] = np.median(log_i[starts[k]:starts[k] + counts[k]])
    window = min(opts.smooth_points, levels.size - (1 - levels.size % 2))
    smoothed = medfilt(merged, window) if window >= 3 else merged
    return Leg(levels, smoothed, merged)


def read_resistance(leg: Leg | None, opts: FeatureOptions) -> float:
    """``v_read / I(v_read)`` from a straight-line fit of log |I| against log |V| near v_read
    (averages out noise; exact for an ohmic state), falling back to interpolation when too few
    points lie in the window."""
    if leg is None:
        return float("nan")
    lo, hi = opts.v_read * (1 - opts.read_window), opts.v_read * (1 + opts.read_window)
    near = (leg.abs_v >= lo) & (leg.abs_v <= hi)
    if near.sum() >= 5:
        coef = np.polyfit(np.log10(leg.abs_v[near] / opts.v_read), leg.log10_i[near], 1)
        log_i = coef[-1]
    elif leg.abs_v[0] <= opts.v_read <= leg.abs_v[-1]:
        log_i = np.interp(opts.v_read, leg.abs_v, leg.log10_i)
    else:
        return float("nan")
    return float(opts.v_read / 10.0 ** log_i)


def set_jump(leg: Leg | None) -> tuple[float, float]:
    """(V_set, jump factor): the voltage before the largest one-step rise in conductance."""
    if leg is None or leg.abs_v.size < 2:
        return float("nan"), 1.0
    log_g = leg.log10_i - np.log10(leg.abs_v)
    jumps = np.diff(log_g)
    k = int(np.argmax(jumps))
    return float(leg.abs_v[k]), float(10.0 ** jumps[k])


def measured_features(sweep: MeasuredSweep, reset: MeasuredSweep | None = None,
                      options: FeatureOptions | None = None) -> MeasuredFeatures:
    """Features of one cycle: a full sweep, or its SET and RESET branches given separately."""
    opts = options or FeatureOptions()
    set_branch, reset_branch = split_branches(sweep, opts.set_polarity)
    if reset is not None:  # each part keeps only the points of its own polarity
        reset_branch = split_branches(reset, opts.set_polarity)[1]
    set_out, set_back = branch_legs(set_branch.voltage_v, set_branch.current_a, opts)
    reset_out, reset_back = branch_legs(reset_branch.voltage_v, reset_branch.current_a, opts)
    r_lrs = read_resistance(set_back or reset_out, opts)
    r_hrs = read_resistance(reset_back or set_out, opts)
    v_set, jump = set_jump(set_out)
    v_reset, i_reset = _reset_peak(reset_out, reset_back, opts)
    set_legs = [leg.raw_log10_i.max() for leg in (set_out, set_back) if leg is not None]
    i_set_max = float(10.0 ** max(set_legs)) if set_legs else float("nan")
    switched = bool(r_hrs >= opts.min_ratio * r_lrs and jump >= opts.min_jump)
    path, log_i, span = _reset_path(reset_out, reset_back)
    return MeasuredFeatures(
        r_lrs_ohm=r_lrs, r_hrs_ohm=r_hrs, v_set_v=opts.set_polarity * v_set,
        v_reset_v=-opts.set_polarity * v_reset, i_reset_a=i_reset, i_set_max_a=i_set_max,
        switched=switched, source=sweep.source, device=sweep.device, cycle=sweep.cycle,
        compliance_a=sweep.compliance_a, reset_path_v=path, reset_log10_i=log_i, reset_span_v=span)


def _reset_peak(out: Leg | None, back: Leg | None,
                opts: FeatureOptions) -> tuple[float, float]:
    """|V| and |I| where the smoothed RESET current peaks, over both legs as the simulator
    does (the peak lies on the outgoing leg, where RESET starts, unless that leg is missing)."""
    legs = [leg for leg in (out, back) if leg is not None]
    if not legs:
        return float("nan"), float("nan")
    best = max(legs, key=lambda leg: leg.log10_i.max())
    # The median filter clips a sharp peak towards lower |V|: locate it on the smoothed curve,
    # then take the measured maximum within half a window above.
    k = int(np.argmax(best.log10_i))
    stop = min(k + opts.smooth_points // 2 + 1, best.abs_v.size)
    k += int(np.argmax(best.raw_log10_i[k:stop]))
    return float(best.abs_v[k]), float(10.0 ** best.raw_log10_i[k])


def _reset_path(out: Leg | None, back: Leg | None) -> tuple[np.ndarray, np.ndarray, float]:
    """The RESET half as |V| travelled from 0 V: up the outgoing leg, down the return leg."""
    if out is None and back is None:
        return np.zeros(0), np.zeros(0), 0.0
    peak = max(leg.abs_v[-1] for leg in (out, back) if leg is not None)
    parts_v, parts_i = [], []
    if out is not None:
        parts_v.append(out.abs_v)
        parts_i.append(out.log10_i)
    if back is not None:
        parts_v.append(2 * peak - back.abs_v[::-1])
        parts_i.append(back.log10_i[::-1])
    return np.concatenate(parts_v), np.concatenate(parts_i), float(2 * peak)


@dataclass(frozen=True, eq=False)
class MeasuredArrays:
    """The arrays the simulated dataset holds, for measured cycles (one row per cycle).

    A feature is NaN only where the sweep lacks the branch it is read on (no RESET half, say);
    cycles that did not switch have finite features and ``switched`` False.
    """

    features: np.ndarray  # [S, 5] log R_LRS, log R_HRS, V_set, V_reset, log I_reset
    traces: np.ndarray  # [S, trace_points] log10 |I| along the RESET half
    switched: np.ndarray  # [S] bool
    compliance_a: np.ndarray  # [S] NaN where the file does not say
    device: np.ndarray  # [S] str ('' where unknown)
    cycle: np.ndarray  # [S] str ('' where unknown)
    source: np.ndarray  # [S] str


def to_arrays(results: Sequence[MeasuredFeatures], trace_points: int = 64) -> MeasuredArrays:
    """Stack per-cycle features into the simulated dataset's layout (non-switching cycles are
    kept and marked; filter on ``switched`` if they should go)."""
    if not results:
        raise DataError("no measured cycles to turn into arrays")
    return MeasuredArrays(
        features=np.stack([r.feature_row() for r in results]),
        traces=np.stack([r.trace(trace_points) for r in results]),
        switched=np.array([r.switched for r in results]),
        compliance_a=np.array([np.nan if r.compliance_a is None else r.compliance_a
                               for r in results]),
        device=np.array([r.device or "" for r in results]),
        cycle=np.array(["" if r.cycle is None else str(r.cycle) for r in results]),
        source=np.array([r.source for r in results]))
