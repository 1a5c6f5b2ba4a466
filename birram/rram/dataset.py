"""The compliance-current dataset: which I_CC set this SET/RESET cycle's filament?

A population of devices is cycled at ``n_levels`` log-spaced compliance currents with the gap +
filament-width model, whose low-resistance state follows I_CC over the whole range. Each
physical device (one device-to-device draw) is cycled at every level, each level from a fresh
high-resistance state; each sample is one recorded cycle of one device at one level. Devices
are split into train and test, so test devices are never seen in training.

The ``trace`` view is the RESET half of the cycle (0 -> -V_max -> 0) as log10 |I| at
``trace_points`` voltages, standardised per position with train statistics. The SET half is
left out on purpose: an ideal source-measure unit prints I_CC itself on it as a flat plateau,
which would make the label readable from a single point.

Cycles that do not reach the compliance current by ``v_set_max`` are kept by default: a real
measurement campaign records them too, and dropping them would leak the label through the
selection (``drop_failed=True`` removes them from both splits).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from birram import io
from birram.cache import cache_dir
from birram.data.types import ArrayDataset
from birram.errors import ConfigError, DataError
from birram.rram.cycling import CycleResult, SweepConfig, run_cycles
from birram.rram.integrate import IntegratorOptions
from birram.rram.param_file import ParamSet, load_param_set
from birram.rram.params import get_params
from birram.rram.variability import Variability

FORMAT_VERSION = 4  # bump when the simulator or the stored layout changes
FEATURE_VIEW_NAMES = ("log_r_lrs", "log_r_hrs", "v_set", "v_reset", "log_i_reset")
View = Literal["features", "trace"]


@dataclass(frozen=True)
class RRAMDatasetConfig:
    n_levels: int = 10
    icc_min_a: float = 10e-6
    icc_max_a: float = 1e-3
    n_train_devices: int = 320
    n_test_devices: int = 80
    cycles: int = 8
    warmup_cycles: int = 1
    variability_scale: float = 1.0
    trace_points: int = 64
    params: str = "filament"
    v_set_max: float = 1.5
    v_reset_max: float = 1.6
    sweep_rate_v_per_s: float = 1e4
    sweep_step_v: float = 5e-3
    compliance_mode: Literal["ideal", "1t1r"] = "ideal"
    drop_failed: bool = False
    seed: int = 0
    # A parameter-set file (``birram fit`` writes one): its parameters and variability replace
    # ``params`` and the named set's sigmas (variability_scale still multiplies them).
    params_file: str | None = None

    def __post_init__(self) -> None:
        # Upper bounds: generous for research, but a typo must not start a day-long simulation.
        ints = {"n_levels": (2, 64), "n_train_devices": (1, 100_000),
                "n_test_devices": (1, 100_000), "cycles": (1, 1000), "warmup_cycles": (0, 100),
                "trace_points": (2, 4096), "seed": (0, 2**32 - 1)}
        for name, (low, high) in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"RRAM dataset {name} must be an integer in [{low}, {high}], "
                                  f"got {value!r}")
        reals = {"icc_min_a": (1e-9, 0.1), "icc_max_a": (1e-9, 0.1), "v_set_max": (1e-3, 20.0),
                 "v_reset_max": (1e-3, 20.0), "sweep_rate_v_per_s": (1e-2, 1e12),
                 "sweep_step_v": (1e-4, 1.0)}
        for name, (low, high) in reals.items():
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not low <= value <= high):
                raise ConfigError(f"RRAM dataset {name} must be a number in [{low:g}, {high:g}], "
                                  f"got {value!r}")
        if not isinstance(self.variability_scale, (int, float)):
            raise ConfigError(f"RRAM dataset variability_scale must be a number, "
                              f"got {self.variability_scale!r}")
        if self.icc_max_a <= self.icc_min_a:
            raise ConfigError(f"RRAM dataset icc_max_a ({self.icc_max_a}) must exceed "
                              f"icc_min_a ({self.icc_min_a})")
        if not (math.isfinite(self.variability_scale) and 0 <= self.variability_scale <= 20):
            raise ConfigError(f"RRAM dataset variability_scale must lie in [0, 20], "
                              f"got {self.variability_scale}")
        if self.compliance_mode not in ("ideal", "1t1r"):
            raise ConfigError(f"RRAM dataset compliance_mode must be ideal or 1t1r, "
                              f"got {self.compliance_mode!r}")
        if not isinstance(self.params, str):
            raise ConfigError(f"RRAM dataset params must be a parameter-set name, "
                              f"got {self.params!r}")
        get_params(self.params)
        if self.params_file is not None:
            if not isinstance(self.params_file, str) or not self.params_file:
                raise ConfigError(f"RRAM dataset params_file must be a file path, "
                                  f"got {self.params_file!r}")
            self.param_set()  # read and validated where the setting enters

    @classmethod
    def small(cls, **changes: object) -> RRAMDatasetConfig:
        """A few seconds' worth: for tests and quick looks."""
        base = {"n_levels": 4, "icc_min_a": 10e-6, "icc_max_a": 1e-3, "n_train_devices": 12,
                "n_test_devices": 4, "cycles": 2, "trace_points": 32, "sweep_step_v": 0.01}
        return cls(**{**base, **changes})  # type: ignore[arg-type]

    @property
    def levels_a(self) -> np.ndarray:
        return np.geomspace(self.icc_min_a, self.icc_max_a, self.n_levels)

    @property
    def n_devices(self) -> int:
        return self.n_train_devices + self.n_test_devices

    def param_set(self) -> ParamSet:
        """The device parameters and variability (at scale 1) this dataset simulates."""
        if self.params_file is not None:
            return load_param_set(self.params_file)
        params = get_params(self.params)
        return ParamSet(params, Variability.for_params(params))

    def key(self) -> str:
        settings = dataclasses.asdict(self)
        # the file's content, not its path, decides the data (and no file: the key as before)
        file = settings.pop("params_file")
        if file is not None:
            settings["param_set"] = self.param_set().digest()
        text = json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def level_name(icc_a: float) -> str:
    if icc_a >= 1e-3:
        return f"{icc_a * 1e3:.3g}mA"
    return f"{icc_a * 1e6:.3g}uA"


@dataclass(frozen=True)
class RRAMSamples:
    """Raw (unstandardised) samples: one row per recorded cycle of one device at one level."""

    features: np.ndarray  # [S, 5] log R_LRS, log R_HRS, V_set, V_reset, log I_reset
    traces: np.ndarray  # [S, trace_points] log10 |I| along the RESET half-sweep
    labels: np.ndarray  # [S] compliance level index, 0 = lowest
    device_ids: np.ndarray  # [S] physical device
    cycle: np.ndarray  # [S]
    train: np.ndarray  # [S] bool
    reached_compliance: np.ndarray  # [S] bool
    levels_a: np.ndarray  # [n_levels]
    seconds: float  # generation time

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}


@contextlib.contextmanager
def single_thread() -> Iterator[int]:
    """The simulator issues many small tensor operations: extra intra-op threads only add
    contention (badly so on a shared machine), so run them on one. Yields the thread count
    set before, which the compiled integrator uses for its own (coarse-grained) threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield before
    finally:
        torch.set_num_threads(before)


def generate_rram_samples(cfg: RRAMDatasetConfig) -> RRAMSamples:
    """Simulate the whole population (all levels and devices in one batch)."""
    with single_thread() as threads:
        return _generate(cfg, IntegratorOptions(threads=threads))


def simulate_population(cfg: RRAMDatasetConfig, options: IntegratorOptions,
                        cycles: int | None = None, keep_iv: torch.Tensor | int = 0
                        ) -> CycleResult:
    """Cycle every device of the population at every level (one batch; instance
    ``level * n_devices + device``). With fewer ``cycles`` than the dataset records, the
    recorded cycles are the dataset's first ones; ``keep_iv`` instances keep their I-V curves."""
    param_set = cfg.param_set()
    levels = torch.as_tensor(cfg.levels_a, dtype=torch.float64)
    n = cfg.n_levels * cfg.n_devices
    instance = torch.arange(n)
    level_of, device_of = instance // cfg.n_devices, instance % cfg.n_devices
    sweep = SweepConfig(cfg.v_set_max, cfg.v_reset_max, cfg.sweep_rate_v_per_s, cfg.sweep_step_v)
    return run_cycles(param_set.params, levels[level_of], n, cycles or cfg.cycles,
                      variability=param_set.scaled(cfg.variability_scale), seed=cfg.seed,
                      sweep=sweep, compliance_mode=cfg.compliance_mode,
                      warmup_cycles=cfg.warmup_cycles, trace_points=cfg.trace_points,
                      keep_iv=keep_iv, device_ids=device_of, n_devices=cfg.n_devices,
                      trace_span="reset", options=options)


def _generate(cfg: RRAMDatasetConfig, options: IntegratorOptions) -> RRAMSamples:
    levels = torch.as_tensor(cfg.levels_a, dtype=torch.float64)
    n = cfg.n_levels * cfg.n_devices
    instance = torch.arange(n)
    level_of, device_of = instance // cfg.n_devices, instance % cfg.n_devices
    result = simulate_population(cfg, options)
    f = result.features
    feats = torch.stack([f["r_lrs_ohm"].log(), f["r_hrs_ohm"].log(), f["v_set_v"],
                         f["v_reset_v"], f["i_reset_a"].clamp_min(1e-12).log()], -1)
    reached = f["i_set_max_a"] >= 0.98 * levels[level_of].unsqueeze(0)
    assert result.traces is not None
    cycles = cfg.cycles
    return RRAMSamples(
        features=feats.reshape(cycles * n, -1).numpy(),
        traces=result.traces.reshape(cycles * n, -1).numpy(),
        labels=level_of.repeat(cycles).numpy(),
        device_ids=device_of.repeat(cycles).numpy(),
        cycle=torch.arange(cycles).repeat_interleave(n).numpy(),
        train=(device_of < cfg.n_train_devices).repeat(cycles).numpy(),
        reached_compliance=reached.reshape(-1).numpy(),
        levels_a=cfg.levels_a, seconds=result.seconds)


def default_cache_dir() -> Path:
    return cache_dir()


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes (the cache's integrity check)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read_cache(path: Path) -> RRAMSamples:
    with np.load(path, allow_pickle=False) as data:
        stored = {k: data[k] for k in data.files}
    digest = str(stored.pop("sha256", ""))
    if digest != _digest(stored):
        raise ValueError("content does not match its digest")
    for name in ("features", "traces"):
        if not np.isfinite(stored[name]).all():
            raise ValueError(f"non-finite {name}")
    return RRAMSamples(**{k: (float(v) if k == "seconds" else v) for k, v in stored.items()})


def load_rram_samples(cfg: RRAMDatasetConfig, cache_dir: Path | None = None) -> RRAMSamples:
    """Samples for ``cfg``: from the cache when present and intact, else simulated and cached."""
    path = Path(cache_dir or default_cache_dir()) / f"rram-{cfg.key()}.npz"
    if path.exists():
        try:
            return _read_cache(path)
        except Exception as err:  # any damage (truncation, bad zip, flipped bytes): regenerate
            warnings.warn(f"cached RRAM dataset {path} is damaged ({type(err).__name__}: "
                          f"{err}); regenerating it", stacklevel=2)
    samples = generate_rram_samples(cfg)
    arrays = samples.arrays()
    try:
        io.write_with(path, lambda f: np.savez(f, sha256=np.array(_digest(arrays)), **arrays))
    except OSError as err:
        raise DataError(f"cannot write the RRAM dataset cache {path}: {err}; set BIRRAM_CACHE "
                        "to a writable directory") from None
    return samples


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and scale with TRAIN statistics only (per column)."""
    mean = x_train.mean(0, keepdims=True)
    std = x_train.std(0, keepdims=True)
    std = np.where(std > 1e-6 * max(1.0, float(np.abs(std).max())), std, 1.0)
    return (torch.from_numpy(((x_train - mean) / std).astype(np.float32)),
            torch.from_numpy(((x_test - mean) / std).astype(np.float32)))


def to_array_dataset(samples: RRAMSamples, view: View, drop_failed: bool = False,
                     name: str = "rram") -> ArrayDataset:
    if view not in ("features", "trace"):
        raise ConfigError(f"RRAM view must be features or trace, got {view!r}")
    x = samples.features if view == "features" else samples.traces
    keep = samples.reached_compliance if drop_failed else np.ones(len(x), dtype=bool)
    tr, te = samples.train & keep, ~samples.train & keep
    x_train, x_test = _standardise(x[tr].astype(np.float64), x[te].astype(np.float64))
    return ArrayDataset(
        f"{name}-{view}", x_train, torch.from_numpy(samples.labels[tr].astype(np.int64)),
        x_test, torch.from_numpy(samples.labels[te].astype(np.int64)),
        tuple(level_name(float(a)) for a in samples.levels_a),
        class_values=tuple(float(a) for a in samples.levels_a))


def load_rram_dataset(cfg: RRAMDatasetConfig | None = None, view: View = "features",
                      cache_dir: Path | None = None) -> ArrayDataset:
    """The compliance-level classification dataset (x float32 [N, D], y int64 level index)."""
    cfg = cfg or RRAMDatasetConfig()
    return to_array_dataset(load_rram_samples(cfg, cache_dir), view, cfg.drop_failed)
