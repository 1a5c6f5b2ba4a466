"""Word-line-voltage sweeps of 1T1R cells: resistance after SET against the gate voltage of the
access transistor, and the fit that recovers the transistor's parameters from such a sweep.

Each word-line voltage is one fresh cell in its high-resistance state, SET by one bit-line
pulse through a line resistance and the access transistor, then read at a small voltage (the
cell alone). Low word-line voltages hold the current at the transistor's saturation current,
so the filament stays thin and the resistance high; as V_WL rises the transistor stops
limiting, the cell limits itself against the line resistance, and the resistance saturates at
the transistor-free value (``r_free_ohm``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from birram.errors import ConfigError, DataError
from birram.rram.drive import Compliance, pulse
from birram.rram.integrate import IntegratorOptions, initial_state, simulate
from birram.rram.params import FILAMENT, DeviceParams, validate_params
from birram.rram.physics import TensorParams, read_resistance
from birram.rram.transistor import Transistor

FIT_PARAMETERS = ("v_th_v", "k_a_per_v2", "slope_n", "lambda_per_v")


@dataclass(frozen=True)
class SetDrive:
    """The SET pulse on the bit line and the read that follows it."""

    v_bl_v: float = 1.5  # bit-line pulse amplitude
    pulse_width_s: float = 1e-6
    rise_s: float = 1e-8
    pulse_steps: int = 100
    v_read_v: float = 0.1
    r_line_ohm: float = 1000.0  # bit-line and contact resistance in series with the cell

    def validated(self) -> SetDrive:
        checks = (("bit-line voltage", self.v_bl_v, 1e-3, 20.0),
                  ("pulse width (s)", self.pulse_width_s, 1e-12, 1.0),
                  ("pulse rise time (s)", self.rise_s, 1e-12, 1e-3),
                  ("pulse steps", self.pulse_steps, 2, 100_000),
                  ("read voltage", self.v_read_v, 1e-3, 1.0),
                  ("line resistance (ohm)", self.r_line_ohm, 0.0, 1e9))
        for name, value, low, high in checks:
            if not (math.isfinite(value) and low <= value <= high):
                raise ConfigError(f"{name} must lie in [{low:g}, {high:g}], got {value!r}")
        return self


@dataclass(frozen=True)
class WordlineSweep:
    """Resistance after SET, read at ``drive.v_read_v``, for each word-line voltage."""

    v_wl_v: np.ndarray
    r_read_ohm: np.ndarray
    i_peak_a: np.ndarray  # largest current during the SET pulse
    r_free_ohm: float  # the same pulse without a transistor: where the curve saturates
    r_initial_ohm: float  # the cell before the pulse
    transistor: Transistor
    drive: SetDrive
    params: str


def check_word_line_voltages(v_wl: Sequence[float] | np.ndarray, where: str = "V_WL") -> np.ndarray:
    values = np.asarray(v_wl, dtype=np.float64).ravel()
    if values.size < 2:
        raise ConfigError(f"{where}: expected at least 2 word-line voltages, got {values.size}")
    if not np.isfinite(values).all() or (np.abs(values) > 20).any():
        raise ConfigError(f"{where}: word-line voltages must be finite and within +-20 V")
    if (np.diff(values) <= 0).any():
        raise ConfigError(f"{where}: word-line voltages must increase strictly")
    if values.size > 10_000:
        raise ConfigError(f"{where}: at most 10000 word-line voltages, got {values.size}")
    return values


def _set_and_read(params: DeviceParams, drive: SetDrive, compliance: Compliance, n: int,
                  options: IntegratorOptions | None) -> tuple[np.ndarray, np.ndarray]:
    """Read resistance after one SET pulse and the peak current, for ``n`` fresh cells."""
    cell = TensorParams(params)
    driven = TensorParams(params.with_(r_series_ohm=params.r_series_ohm + drive.r_line_ohm))
    wave = pulse(drive.v_bl_v, drive.pulse_width_s, rise_s=drive.rise_s,
                 steps=drive.pulse_steps)
    trace, state = simulate(driven, wave, compliance, initial_state(driven, n), None, options)
    assert trace.current_a is not None
    r = read_resistance(cell, state.gap_m, state.width_m, drive.v_read_v)
    return r.double().numpy(), trace.current_a.max(0).values.double().numpy()


def simulate_wordline(v_wl: Sequence[float] | np.ndarray, transistor: Transistor | None = None,
                      drive: SetDrive | None = None, params: DeviceParams = FILAMENT,
                      options: IntegratorOptions | None = None) -> WordlineSweep:
    """Resistance after SET against word-line voltage (``transistor.v_wl_v`` is replaced)."""
    values = check_word_line_voltages(v_wl)
    drive = (drive or SetDrive()).validated()
    params = validate_params(params)
    base = transistor or Transistor()
    swept = replace(base, v_wl_v=torch.as_tensor(values)).validated()
    r, peak = _set_and_read(params, drive, Compliance(mode="transistor", transistor=swept),
                            values.size, options)
    r_free, _ = _set_and_read(params, drive, Compliance(mode="none"), 1, options)
    cell = TensorParams(params)
    fresh = initial_state(cell, 1)
    r0 = float(read_resistance(cell, fresh.gap_m, fresh.width_m, drive.v_read_v)[0])
    return WordlineSweep(values, r, peak, float(r_free[0]), r0, replace(base, v_wl_v=math.nan),
                         drive, params.name)


# ----------------------------------------------------------------------------- fitting

@dataclass(frozen=True)
class WordlineFit:
    """Transistor parameters that reproduce a measured sweep, and how well they do."""

    transistor: Transistor
    fitted: tuple[str, ...]
    rms_log10_error: float  # root-mean-square of log10(R_model / R_measured)
    evaluations: int
    model_r_ohm: np.ndarray


def _pack(t: Transistor, names: Sequence[str]) -> np.ndarray:
    # K and lambda are fitted on a log scale: they span decades and must stay positive
    return np.array([math.log10(float(getattr(t, n))) if n in ("k_a_per_v2", "lambda_per_v")
                     else float(getattr(t, n)) for n in names])


def _unpack(t: Transistor, names: Sequence[str], x: np.ndarray) -> Transistor:
    values = {n: float(10.0 ** v) if n in ("k_a_per_v2", "lambda_per_v") else float(v)
              for n, v in zip(names, x)}
    return replace(t, **values)


def _bounds(names: Sequence[str], v_wl: np.ndarray) -> tuple[list[float], list[float]]:
    table = {"v_th_v": (float(v_wl.min()) - 1.5, float(v_wl.max())),
             "k_a_per_v2": (-7.0, 0.0), "slope_n": (1.0, 3.0), "lambda_per_v": (-4.0, 0.0)}
    return [table[n][0] for n in names], [table[n][1] for n in names]


def fit_wordline(v_wl: Sequence[float] | np.ndarray, r_ohm: Sequence[float] | np.ndarray,
                 drive: SetDrive | None = None, params: DeviceParams = FILAMENT,
                 start: Transistor | None = None,
                 fit: Sequence[str] = ("v_th_v", "k_a_per_v2"),
                 options: IntegratorOptions | None = None) -> WordlineFit:
    """Least-squares fit (in log resistance) of the transistor parameters named in ``fit``;
    the others keep their values in ``start``. The drive and the cell are taken as known.

    A coarse grid over threshold and K, simulated as one batch, picks the starting point, so the
    fit does not depend on a good first guess.
    """
    from scipy.optimize import least_squares

    values = check_word_line_voltages(v_wl)
    r = np.asarray(r_ohm, dtype=np.float64).ravel()
    if r.shape != values.shape:
        raise ConfigError(f"expected one resistance per word-line voltage, got {r.size} for "
                          f"{values.size}")
    if not (np.isfinite(r).all() and (r > 0).all()):
        raise DataError("resistances must be finite and > 0 ohm")
    names = tuple(fit)
    unknown = [n for n in names if n not in FIT_PARAMETERS]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"fit parameters must be distinct names among "
                          f"{', '.join(FIT_PARAMETERS)}, got {', '.join(names) or 'none'}")
    if values.size <= len(names):
        raise DataError(f"fitting {len(names)} parameter(s) needs more than {len(names)} "
                        f"word-line voltages, got {values.size}")
    drive = (drive or SetDrive()).validated()
    params = validate_params(params)
    base = replace(start or Transistor(), v_wl_v=0.0).validated()
    log_r = np.log10(r)
    evaluations = 0

    def model(candidates: list[Transistor]) -> np.ndarray:
        """log10 R for every candidate at every V_WL, all in one simulated batch."""
        nonlocal evaluations
        evaluations += len(candidates)
        cols = {f: torch.as_tensor(np.concatenate([
            np.broadcast_to(float(getattr(c, f)), values.shape) for c in candidates]))
            for f in ("v_th_v", "k_a_per_v2", "slope_n", "lambda_per_v")}
        batch = Transistor(v_wl_v=torch.as_tensor(np.tile(values, len(candidates))),
                           thermal_voltage_v=base.thermal_voltage_v, **cols)
        out, _ = _set_and_read(params, drive, Compliance(mode="transistor", transistor=batch),
                               values.size * len(candidates), options)
        return np.log10(out).reshape(len(candidates), values.size)

    lower, upper = _bounds(names, values)
    grid = [base]
    if "v_th_v" in names or "k_a_per_v2" in names:
        v_ths = np.linspace(lower[names.index("v_th_v")] + 0.5, upper[names.index("v_th_v")]
                            - 0.2, 7) if "v_th_v" in names else [float(base.v_th_v)]
        ks = 10.0 ** np.arange(-5.0, -1.0) if "k_a_per_v2" in names else [
            float(base.k_a_per_v2)]
        grid += [replace(base, v_th_v=float(v), k_a_per_v2=float(k)) for v in v_ths for k in ks]
    errors = ((model(grid) - log_r) ** 2).sum(1)
    x0 = np.clip(_pack(grid[int(np.argmin(errors))], names), lower, upper)

    def residual(x: np.ndarray) -> np.ndarray:
        return model([_unpack(base, names, x)])[0] - log_r

    result = least_squares(residual, x0, bounds=(lower, upper), diff_step=1e-4, x_scale=1.0,
                           xtol=1e-10, ftol=1e-10, max_nfev=200)
    best = _unpack(base, names, result.x)
    model_r = 10.0 ** (result.fun + log_r)
    return WordlineFit(best, names, float(np.sqrt(np.mean(result.fun**2))), evaluations,
                       model_r)
