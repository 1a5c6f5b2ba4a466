"""A directory of measured I-V sweeps as the compliance-level dataset the protocols read.

Every sweep file in the directory (``.csv``, ``.tsv``, ``.txt``, ``.dat``, and Keithley
``.xlsx``/``.xlsm`` workbooks, searched recursively)
is read (:mod:`birram.rram.measured`) and each cycle turned into the simulator's features and
RESET trace (:mod:`birram.rram.measured_features`). The compliance current each sweep states is
its class: levels are the distinct values (to three significant digits), lowest first, as in the
simulated dataset. Cycles that did not switch, or that lack the branch a feature is read on, are
left out and counted in the dataset's notes. Devices are split into train and test with a seeded
draw, stratified by level, so no test device is ever seen in training. Everything is checked
before a file is written: a bad directory raises one :class:`~birram.errors.DataError`.

A cycle is either one sweep holding both polarities, or a SET-only sweep followed directly by a
RESET-only sweep of the same device at the same compliance (the two are joined).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from birram.data.types import ArrayDataset
from birram.errors import ConfigError, DataError
from birram.rram.dataset import RRAMSamples, View, level_name, to_array_dataset
from birram.rram.measured import MeasuredSweep, read_sweeps
from birram.rram.measured_features import FeatureOptions, MeasuredFeatures, measured_features

SWEEP_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".xlsx", ".xlsm")


@dataclass(frozen=True)
class MeasuredDatasetConfig:
    """How a measured directory becomes a dataset (``data.measured_options`` in a run config)."""

    test_fraction: float = 0.2  # share of each level's devices held out (the simulated 80/400)
    split_seed: int = 0  # the device split; fixed across run seeds, as the simulated split is
    trace_points: int = 64  # points of the trace view along the RESET half
    format: str = "auto"  # auto, table, easyexpert or keithley (see birram.rram.measured)
    v_read: float = 0.1  # |V| at which R_LRS and R_HRS are read
    set_polarity: int = 1  # +1: SET at positive voltage
    current_floor_a: float = 1e-12  # instrument resolution

    def __post_init__(self) -> None:
        if not (isinstance(self.test_fraction, (int, float)) and 0 < self.test_fraction < 1):
            raise ConfigError(f"measured test_fraction must lie in (0, 1), "
                              f"got {self.test_fraction!r}")
        for name, low, high in (("split_seed", 0, 2**32 - 1), ("trace_points", 2, 4096)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"measured {name} must be an integer in [{low}, {high}], "
                                  f"got {value!r}")
        if self.format not in ("auto", "table", "easyexpert", "keithley"):
            raise ConfigError(f"measured format must be auto, table, easyexpert or keithley, "
                              f"got {self.format!r}")
        self.feature_options()  # validates v_read, set_polarity and current_floor_a

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> MeasuredDatasetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown data.measured_options setting {unknown[0]!r}; allowed: "
                              f"{', '.join(sorted(known))}")
        try:
            return cls(**options)
        except TypeError as err:
            raise ConfigError(f"bad data.measured_options value: {err}") from None

    def feature_options(self) -> FeatureOptions:
        return FeatureOptions(v_read=self.v_read, set_polarity=self.set_polarity,
                              current_floor_a=self.current_floor_a)


@dataclass(frozen=True)
class MeasuredCycles:
    """The usable cycles of a directory, before the split, and what was left out."""

    results: list[MeasuredFeatures]
    devices: list[str]  # per result: the device it was measured on
    levels_a: np.ndarray  # distinct compliance levels, ascending
    labels: np.ndarray  # per result: index into levels_a
    not_switched: int
    incomplete: int  # cycles lacking a branch some feature is read on
    files: int


def sweep_files(directory: Path) -> list[Path]:
    if not directory.exists():
        raise DataError(f"measured data directory {directory} does not exist")
    if not directory.is_dir():
        raise DataError(f"measured data {directory} is not a directory; pass the folder that "
                        "holds the sweep files")
    files = sorted(p for p in directory.rglob("*")
                   if p.is_file() and p.suffix.lower() in SWEEP_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(directory).parts))
    if not files:
        raise DataError(f"no sweep files ({', '.join(SWEEP_SUFFIXES)}) in {directory}")
    return files


def _polarities(sweep: MeasuredSweep, polarity: int) -> tuple[bool, bool]:
    v = polarity * sweep.voltage_v
    return bool((v > 0).any()), bool((v < 0).any())


def join_branches(sweeps: Sequence[MeasuredSweep], polarity: int) -> list[MeasuredSweep]:
    """Full cycles: sweeps with both polarities as they are, and each SET-only sweep joined with
    a RESET-only sweep of the same device and compliance that follows it directly."""
    out: list[MeasuredSweep] = []
    k = 0
    while k < len(sweeps):
        sweep = sweeps[k]
        has_set, has_reset = _polarities(sweep, polarity)
        if has_set and not has_reset and k + 1 < len(sweeps):
            nxt = sweeps[k + 1]
            if (_polarities(nxt, polarity) == (False, True) and nxt.device == sweep.device
                    and nxt.compliance_a == sweep.compliance_a and nxt.source == sweep.source):
                out.append(MeasuredSweep(np.concatenate([sweep.voltage_v, nxt.voltage_v]),
                                         np.concatenate([sweep.current_a, nxt.current_a]), None,
                                         sweep.source, sweep.device, sweep.cycle,
                                         sweep.compliance_a))
                k += 2
                continue
        out.append(sweep)
        k += 1
    return out


def _level_key(compliance_a: float) -> float:
    """Compliance values as one level when equal to three significant digits."""
    return float(f"{compliance_a:.3g}")


def read_cycles(directory: Path, cfg: MeasuredDatasetConfig) -> MeasuredCycles:
    """Every usable cycle of ``directory`` with its device and level (DataError if none)."""
    directory = Path(directory)
    files = sweep_files(directory)
    opts = cfg.feature_options()
    results: list[MeasuredFeatures] = []
    devices: list[str] = []
    not_switched = incomplete = 0
    for path in files:
        where = path.relative_to(directory).as_posix()
        for sweep in join_branches(read_sweeps(path, cfg.format), cfg.set_polarity):  # type: ignore[arg-type]
            if sweep.compliance_a is None or not math.isfinite(sweep.compliance_a) \
                    or sweep.compliance_a <= 0:
                raise DataError(f"{where}: a sweep (device {sweep.device or '?'}, cycle "
                                f"{sweep.cycle if sweep.cycle is not None else '?'}) states no "
                                "compliance current; add a compliance column (e.g. 'Icc (A)') or "
                                "the EasyEXPERT Compliance setting")
            features = measured_features(sweep, options=opts)
            if not np.isfinite(features.feature_row()).all() or features.reset_path_v.size < 2:
                incomplete += 1
                continue
            if not features.switched:
                not_switched += 1
                continue
            results.append(features)
            # Without a device column or setting, each file holds one device.
            devices.append(f"{sweep.device}" if sweep.device else where)
    if not results:
        raise DataError(f"no usable cycles in {directory}: {len(files)} file(s), "
                        f"{not_switched} cycle(s) that did not switch, {incomplete} lacking a SET "
                        "or RESET branch; each cycle needs both polarities and a switching event")
    keys = np.array([_level_key(float(r.compliance_a)) for r in results])  # type: ignore[arg-type]
    levels, labels = np.unique(keys, return_inverse=True)
    if levels.size < 2:
        raise DataError(f"{directory} holds one compliance level ({level_name(levels[0])}); a "
                        "compliance dataset needs at least 2 levels")
    return MeasuredCycles(results, devices, levels, labels, not_switched, incomplete, len(files))


def split_devices(devices: np.ndarray, labels: np.ndarray, levels_a: np.ndarray,
                  test_fraction: float, seed: int) -> np.ndarray:
    """``train`` mask per cycle: whole devices held out, about ``test_fraction`` of each level's
    devices (at least one, never all), drawn in a seeded order."""
    names = np.unique(devices)
    order = {name: k for k, name in enumerate(np.random.default_rng(seed).permutation(names))}
    test: dict[str, bool] = {}
    for level in range(levels_a.size):
        level_devices = sorted(set(devices[labels == level].tolist()), key=order.__getitem__)
        n = len(level_devices)
        if n < 2:
            raise DataError(
                f"level {level_name(levels_a[level])} was measured on {n} device "
                f"({level_devices[0]}); splitting by device needs at least 2 per level (one to "
                "train, one to test): measure more devices or leave that level's files out")
        wanted = min(max(1, round(test_fraction * n)), n - 1)
        held = sum(test.get(d, False) for d in level_devices)
        for d in level_devices:
            if d not in test:
                test[d] = held < wanted
                held += test[d]
    train = np.array([not test[d] for d in devices])
    for level in range(levels_a.size):
        at_level = labels == level
        if train[at_level].all() or not train[at_level].any():
            side = "test" if train[at_level].all() else "training"
            raise DataError(f"level {level_name(levels_a[level])} has no {side} device after "
                            "the split (its devices are shared with other levels); change "
                            "data.measured_options.split_seed or test_fraction")
    return train


def measured_samples(directory: Path, cfg: MeasuredDatasetConfig) -> tuple[RRAMSamples, str]:
    """The simulated dataset's raw arrays for a measured directory, and a one-line account."""
    cycles = read_cycles(directory, cfg)
    devices = np.array(cycles.devices)
    train = split_devices(devices, cycles.labels, cycles.levels_a, cfg.test_fraction,
                          cfg.split_seed)
    _, device_ids = np.unique(devices, return_inverse=True)
    rows = np.stack([r.feature_row() for r in cycles.results])
    traces = np.stack([r.trace(cfg.trace_points) for r in cycles.results])
    cycle_index = np.zeros(len(cycles.results), dtype=np.int64)
    for d in range(device_ids.max() + 1):  # cycles numbered per device, in reading order
        cycle_index[device_ids == d] = np.arange((device_ids == d).sum())
    samples = RRAMSamples(features=rows, traces=traces, labels=cycles.labels.astype(np.int64),
                          device_ids=device_ids.astype(np.int64), cycle=cycle_index, train=train,
                          reached_compliance=np.ones(len(rows), dtype=bool),
                          levels_a=cycles.levels_a, seconds=0.0)
    n_train = len(set(devices[train].tolist()))
    n_test = len(set(devices[~train].tolist()))
    note = (f"measured data {directory}: {len(rows)} cycles from {n_train + n_test} devices "
            f"({n_train} train, {n_test} test) at {cycles.levels_a.size} levels "
            f"({level_name(cycles.levels_a[0])} to {level_name(cycles.levels_a[-1])}) in "
            f"{cycles.files} file(s); left out: {cycles.not_switched} cycle(s) that did not "
            f"switch, {cycles.incomplete} lacking a SET or RESET branch")
    return samples, note


def load_measured_dataset(directory: Path | str, view: View = "features",
                          cfg: MeasuredDatasetConfig | None = None) -> ArrayDataset:
    """The compliance-level dataset of a measured directory, standardised like the simulated
    one (train statistics); its ``notes`` say what was read and what was left out."""
    samples, note = measured_samples(Path(directory), cfg or MeasuredDatasetConfig())
    data = to_array_dataset(samples, view, name="measured")
    return data.with_notes(note)
