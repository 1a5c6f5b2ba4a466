"""Programming RRAM cells with birram's device simulator, and the per-level table it yields.

Programming a weight is choosing a SET compliance current. Every programming operation is a
RESET pulse followed (for levels 1 .. L-1) by a SET pulse under that level's compliance; level 0
is the high-resistance state left by the RESET alone. The cell is then read at ``v_read``.

Waveform. Pulses, not the dataset's DC sweeps: an array is written with pulses, and the write
time and energy should be those of a pulse. Measured with the ``FILAMENT`` set (1,000 devices
per compliance, from a RESET state, ideal compliance): a SET pulse of +1.5 V with 10 ns edges
reaches the compliance current in 100 % of devices for a 1 us plateau at variability scales 1
and 2 (1 uA, 10 uA, 100 uA), and in 99.4 % at scale 2 and 100 uA for a 100 ns plateau; a RESET
pulse of -1.6 V opens the gap fully in 100 % of devices already at 100 ns. So the defaults are
SET +1.5 V for 1 us and RESET -1.6 V for 100 ns. With them the read conductance at 0.1 V grows
about linearly with the compliance, ``G ~ I_CC / 0.85-0.98 V`` from 10 uA to 200 uA for a cell
whose earlier state had the same compliance (the slower DC sweep grows the filament further,
``G ~ I_CC / 0.3-0.4 V``), so evenly spaced levels need about evenly spaced compliance
currents. Below that the filament left by earlier states adds conductance (``I_CC / G`` = 0.76 V
at 3 uA, 0.54 V at 1 uA), the more so the larger those states were.

History. What a RESET leaves depends on the filament it dissolves (about a third of the excess
width survives a full gap opening), so each simulated cell first holds an earlier programmed
state: a SET at the compliance of a uniformly drawn level 1 .. L-1. Every cell is a fresh
device-to-device draw with a fresh cycle-to-cycle draw (``birram.rram.variability``).

Placement. Level 0's mean conductance comes from the RESET alone; the top level's compliance is
``icc_max_a``; the others are placed so that the mean conductances are evenly spaced between
the two, from a smooth fit of G against I_CC over pilot populations (two passes of 200 cells
per level), then the table is simulated afresh.

Write energy is ``sum_k V_k I_k dt_k`` over the simulated RESET and SET pulses, with ``V`` the
applied voltage: the energy the driver delivers, including what the compliance element burns.

Measured with the defaults (16 levels, 1,000 cells per level, variability scale 1, seed 0):
level 0 at 0.11 uS, levels 1-15 from 7.83 uS (I_CC 3.2 uA) to 102.7 uS (100 uA) in steps of
6.78 uS that stay within 14 % of each other; the spread of a SET level is about 8.5 % of its
mean from level 3 up, 28 % at level 1 and 19 % at level 2, where the filament left by the cell's
earlier state decides more of the conductance (2.2 uS at level 1, 8.7 uS at level 15, i.e. 0.32
to 1.27 level spacings); the write energy rises from 0.2 pJ (level 0, RESET only) through
5.0 pJ (level 1) to 150.0 pJ (level 15). The
whole calibration takes about 1 s on 2 CPU cores with the compiled integrator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from birram import io
from birram.errors import ConfigError, DataError
from birram.hardware.cells import LevelTable
from birram.rram import physics
from birram.rram.dataset import default_cache_dir, single_thread
from birram.rram.drive import Compliance, Waveform, pulse
from birram.rram.integrate import DeviceState, IntegratorOptions, initial_state, simulate
from birram.rram.params import FILAMENT, DeviceParams, validate_params
from birram.rram.variability import Variability, device_params, draw_normals, read_noise

FORMAT_VERSION = 2  # bump when the simulation or the stored layout changes
MAX_LEVELS = 64
RESET_COMPLIANCE_A = 1.0  # the compliance acts on positive bias only; any value will do


@dataclass(frozen=True)
class PulseSettings:
    """The programming pulses (trapezoids with ``edge_s`` rise and fall)."""

    set_v: float = 1.5
    set_width_s: float = 1e-6
    reset_v: float = -1.6
    reset_width_s: float = 100e-9
    edge_s: float = 10e-9
    steps: int = 100  # voltage points on each plateau

    def check(self) -> PulseSettings:
        for name in ("set_v", "set_width_s", "reset_width_s", "edge_s"):
            _require_positive(f"pulse {name}", getattr(self, name))
        if not (math.isfinite(self.reset_v) and self.reset_v < 0):
            raise ConfigError(f"pulse reset_v must be a negative voltage, got {self.reset_v!r}")
        if not (isinstance(self.steps, int) and self.steps >= 10):
            raise ConfigError(f"pulse steps must be an integer >= 10, got {self.steps!r}")
        return self

    def set_wave(self) -> Waveform:
        return pulse(self.set_v, self.set_width_s, rise_s=self.edge_s, steps=self.steps)

    def reset_wave(self) -> Waveform:
        return pulse(self.reset_v, self.reset_width_s, rise_s=self.edge_s, steps=self.steps)


@dataclass(frozen=True)
class ProgrammingConfig:
    """Everything that decides the level table; its hash is the cache key.

    ``icc_max_a`` is the compliance of the top level. 100 uA by default: a current a
    minimum-size access transistor sinks, a top conductance of about 100 uS (10 kohm, 10 uA
    per cell at 0.1 V), and within the 10 uA - 1 mA range ``FILAMENT`` was calibrated for.
    ``icc_min_a`` is the lowest compliance the calibration may choose (64 levels need 1.65 uA
    for level 1; G stays proportional to I_CC down to 1 uA).
    """

    n_levels: int = 16
    icc_min_a: float = 1e-6
    icc_max_a: float = 100e-6
    v_read_v: float = 0.1
    devices_per_level: int = 1000
    pilot_devices: int = 200  # per level, for each pass that places the compliance currents
    placement_passes: int = 2
    variability_scale: float = 1.0
    params: DeviceParams = FILAMENT
    variability: Variability | None = None  # None: the parameter set's own, at the scale
    pulses: PulseSettings = field(default_factory=PulseSettings)
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.n_levels, int) and 2 <= self.n_levels <= MAX_LEVELS):
            raise ConfigError(f"n_levels must be an integer in [2, {MAX_LEVELS}], "
                              f"got {self.n_levels!r}")
        for name in ("icc_min_a", "icc_max_a", "v_read_v"):
            _require_positive(name, getattr(self, name))
        if self.icc_max_a <= self.icc_min_a:
            raise ConfigError(f"icc_max_a ({self.icc_max_a}) must exceed icc_min_a "
                              f"({self.icc_min_a})")
        if self.v_read_v >= self.params.set_threshold_v():
            raise ConfigError(f"v_read_v ({self.v_read_v} V) must stay below the SET threshold "
                              f"of {self.params.name} ({self.params.set_threshold_v():.3g} V)")
        for name, low in (("devices_per_level", 2), ("pilot_devices", 2),
                          ("placement_passes", 0)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= low):
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (math.isfinite(self.variability_scale) and 0 <= self.variability_scale <= 20):
            raise ConfigError(f"variability_scale must lie in [0, 20], "
                              f"got {self.variability_scale!r}")
        validate_params(self.params)
        self.var.validated(self.params)
        self.pulses.check()

    @property
    def var(self) -> Variability:
        if self.variability is not None:
            return self.variability
        return Variability.for_params(self.params, scale=self.variability_scale)

    def key(self) -> str:
        text = json.dumps({"format": FORMAT_VERSION, **dataclasses.asdict(self),
                           "variability": dataclasses.asdict(self.var)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def _require_positive(name: str, value: object) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class ProgrammedCells:
    """Per-cell outcome of simulated programming (tensors ``[n]``, float64)."""

    g_s: Tensor  # read conductance at v_read without read noise, S
    g_read_s: Tensor  # one read of it, with the read noise of the variability, S
    energy_j: Tensor  # energy of the RESET (+ SET) pulses, J
    gap_m: Tensor  # final state
    width_m: Tensor


def pulse_energy(wave: Waveform, current_a: Tensor) -> Tensor:
    """``sum_k V_k I_k dt_k`` per device: ``current_a[k]`` flows at ``volts[k]`` for ``dt[k]``."""
    vdt = (wave.volts * wave.dt_s).to(torch.float64).unsqueeze(1)
    return (vdt * current_a.to(torch.float64)).sum(0)


def simulate_programming(config: ProgrammingConfig, icc_a: Tensor, history_icc_a: Tensor,
                         generator: torch.Generator, *,
                         options: IntegratorOptions | None = None) -> ProgrammedCells:
    """Program fresh devices: each holds a SET at ``history_icc_a``, then gets a RESET and,
    where ``icc_a > 0``, a SET at ``icc_a``; then one read at ``v_read``.

    All draws (device-to-device, cycle-to-cycle, read noise) come from ``generator``.
    """
    icc = torch.as_tensor(icc_a, dtype=torch.float64).reshape(-1)
    history = torch.as_tensor(history_icc_a, dtype=torch.float64).reshape(-1)
    n = icc.numel()
    var = config.var
    d2d = draw_normals(var.d2d, n, generator)
    p_history = device_params(config.params, var, d2d, draw_normals(var.c2c, n, generator))
    p = device_params(config.params, var, d2d, draw_normals(var.c2c, n, generator))
    set_wave, reset_wave = config.pulses.set_wave(), config.pulses.reset_wave()
    opts = options or IntegratorOptions()
    state = initial_state(p, n)
    _, state = simulate(p_history, set_wave, Compliance(history), state, generator, opts)
    reset_trace, state = simulate(p, reset_wave, Compliance(torch.full((n,), RESET_COMPLIANCE_A,
                                                                         dtype=torch.float64)),
                                  state, generator, opts)
    assert reset_trace.current_a is not None
    energy = pulse_energy(reset_wave, reset_trace.current_a)
    setting = (icc > 0).nonzero().squeeze(1)
    if setting.numel():
        sub = DeviceState(state.gap_m[setting], state.width_m[setting], state.temp_k[setting])
        set_trace, sub = simulate(p.subset(setting), set_wave, Compliance(icc[setting]), sub,
                                  generator, opts)
        assert set_trace.current_a is not None
        energy[setting] += pulse_energy(set_wave, set_trace.current_a)
        state.gap_m[setting], state.width_m[setting] = sub.gap_m, sub.width_m
    current = physics.read_current(p, state.gap_m, state.width_m, config.v_read_v)
    g = current / config.v_read_v
    g_read = read_noise(current, var.read_noise_sigma, generator) / config.v_read_v
    return ProgrammedCells(g, g_read, energy, state.gap_m, state.width_m)


def draw_history(set_icc_a: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """The compliance of each cell's earlier programmed state: a uniformly drawn SET level."""
    pick = torch.randint(0, set_icc_a.numel(), (n,), generator=generator)
    return set_icc_a[pick]


@dataclass(frozen=True)
class Calibration:
    """The level table plus the per-level mean state that retention starts from."""

    table: LevelTable
    gap_mean_m: np.ndarray  # [L]
    width_mean_m: np.ndarray  # [L]
    seconds: float  # simulation time (0 when loaded from the cache)


def simulate_levels(config: ProgrammingConfig, icc_a: np.ndarray, per_level: int,
                    generator: torch.Generator) -> ProgrammedCells:
    """``per_level`` devices at each level's compliance, in one batch, level-major."""
    icc = torch.as_tensor(icc_a, dtype=torch.float64)
    cells = icc.repeat_interleave(per_level)
    history = draw_history(icc[1:], cells.numel(), generator)
    with single_thread() as threads:
        return simulate_programming(config, cells, history, generator,
                                    options=IntegratorOptions(threads=threads))


def initial_compliances(config: ProgrammingConfig) -> np.ndarray:
    """First guess: conductance about proportional to compliance, so evenly spaced I_CC."""
    icc = np.linspace(0.0, config.icc_max_a, config.n_levels)
    icc[1:] = np.maximum(icc[1:], config.icc_min_a)
    return icc


def place_compliances(config: ProgrammingConfig, icc_a: np.ndarray, g_s: np.ndarray,
                      g_reset_s: float) -> np.ndarray:
    """Compliances whose mean conductances are evenly spaced from level 0 to the top level.

    ``icc_a``/``g_s``: every SET cell simulated so far (compliance, read conductance). A
    quadratic in log I_CC fitted to all of them (G rises smoothly with I_CC, about
    proportionally) averages the cell-to-cell spread over levels and passes, so each level's
    placement does not carry the sampling error of its own pilot mean.
    """
    if config.n_levels == 2:  # nothing to place: RESET and the top level
        return np.array([0.0, config.icc_max_a])
    log_icc = np.log(icc_a)
    # three levels give only two distinct compliances per pass: a straight line then
    coef = np.polyfit(log_icc, np.log(g_s), 2 if config.n_levels > 3 else 1)
    # the fit gives the median of ln G; the mean of G is what must be evenly spaced
    resid_var = float(np.var(np.log(g_s) - np.polyval(coef, log_icc)))
    grid = np.linspace(np.log(config.icc_min_a), np.log(config.icc_max_a), 4096)
    g_grid = np.exp(np.polyval(coef, grid) + resid_var / 2)
    # monotone, anchored at the top: a fit bending up below the data cannot pull levels down
    g_grid = np.minimum.accumulate(g_grid[::-1])[::-1]
    levels = config.n_levels
    targets = g_reset_s + (g_grid[-1] - g_reset_s) * np.arange(1, levels) / (levels - 1)
    icc = np.concatenate([[0.0], np.exp(np.interp(targets, g_grid, grid))])
    icc[-1] = config.icc_max_a
    return np.maximum.accumulate(icc)


def run_calibration(config: ProgrammingConfig) -> Calibration:
    """Place the compliance currents with pilot passes, then simulate the full table."""
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(config.seed)
    icc = initial_compliances(config)
    seen_icc: list[np.ndarray] = []
    seen_g: list[np.ndarray] = []
    g_reset: list[float] = []
    for _ in range(config.placement_passes):
        pilot = simulate_levels(config, icc, config.pilot_devices, gen)
        g = pilot.g_s.reshape(config.n_levels, -1).numpy()
        seen_icc.append(np.repeat(icc[1:], g.shape[1]))
        seen_g.append(g[1:].reshape(-1))
        g_reset.append(float(g[0].mean()))
        icc = place_compliances(config, np.concatenate(seen_icc), np.concatenate(seen_g),
                                float(np.mean(g_reset)))
    cells = simulate_levels(config, icc, config.devices_per_level, gen)
    shape = (config.n_levels, config.devices_per_level)
    table = LevelTable(icc_a=icc, g_samples_s=cells.g_s.reshape(shape).numpy(),
                       write_energy_j=cells.energy_j.reshape(shape).mean(1).numpy(),
                       v_read_v=config.v_read_v, key=config.key())
    return Calibration(table, cells.gap_m.reshape(shape).mean(1).numpy(),
                       cells.width_m.reshape(shape).mean(1).numpy(),
                       time.perf_counter() - start)


# --- the on-disk cache -------------------------------------------------------------------------

def cache_path(config: ProgrammingConfig, cache_dir: Path | str | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / f"rram-cells-{config.key()}.npz"


def _arrays(cal: Calibration) -> dict[str, np.ndarray]:
    t = cal.table
    return {"icc_a": np.asarray(t.icc_a, np.float64),
            "g_samples_s": np.asarray(t.g_samples_s, np.float64),
            "write_energy_j": np.asarray(t.write_energy_j, np.float64),
            "v_read_v": np.asarray([t.v_read_v], np.float64),
            "gap_mean_m": np.asarray(cal.gap_mean_m, np.float64),
            "width_mean_m": np.asarray(cal.width_mean_m, np.float64)}


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def save_calibration(cal: Calibration, path: Path) -> None:
    arrays = _arrays(cal)
    extra = {"key": np.asarray(cal.table.key), "checksum": np.asarray(_checksum(arrays))}
    try:
        io.write_with(path, lambda f: np.savez(f, **arrays, **extra))
    except OSError as err:
        raise DataError(f"cannot write the RRAM cell calibration {path}: {err}") from None


def load_calibration(config: ProgrammingConfig, path: Path) -> Calibration:
    """Read and verify a cached table; DataError (one line) says what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {k: data[k] for k in data.files}
    except Exception as err:  # a damaged zip raises a variety of errors
        raise DataError(f"{path} is unreadable ({type(err).__name__}); delete it") from None
    levels, devices = config.n_levels, config.devices_per_level
    shapes = {"icc_a": (levels,), "g_samples_s": (levels, devices),
              "write_energy_j": (levels,), "v_read_v": (1,), "gap_mean_m": (levels,),
              "width_mean_m": (levels,)}
    for name, shape in shapes.items():
        if name not in stored or stored[name].shape != shape or stored[name].dtype != np.float64:
            raise DataError(f"{path}: {name} is missing or has the wrong shape; delete it")
        if not np.isfinite(stored[name]).all():
            raise DataError(f"{path}: {name} holds NaN or infinite values; delete it")
    arrays = {name: stored[name] for name in shapes}
    if str(stored.get("key", "")) != config.key() or \
            str(stored.get("checksum", "")) != _checksum(arrays):
        raise DataError(f"{path}: checksum or configuration key does not match; delete it")
    table = LevelTable(icc_a=arrays["icc_a"], g_samples_s=arrays["g_samples_s"],
                       write_energy_j=arrays["write_energy_j"],
                       v_read_v=float(arrays["v_read_v"][0]), key=config.key())
    return Calibration(table, arrays["gap_mean_m"], arrays["width_mean_m"], 0.0)


def calibrate(config: ProgrammingConfig, cache_dir: Path | str | None = None) -> Calibration:
    """The calibration for ``config``: from the cache when it is sound, else simulated (and
    cached). A damaged cache file is reported and replaced."""
    path = cache_path(config, cache_dir)
    if path.exists():
        try:
            return load_calibration(config, path)
        except DataError as err:
            warnings.warn(f"replacing a damaged cache file: {err}", stacklevel=2)
    cal = run_calibration(config)
    save_calibration(cal, path)
    return cal


def calibrate_levels(config: ProgrammingConfig | None = None,
                     cache_dir: Path | str | None = None) -> LevelTable:
    """Per-level conductance distributions and write energies (cached by configuration)."""
    return calibrate(config or ProgrammingConfig(), cache_dir).table
