"""A chip as data: tile size, levels, converters, noise, faults, temperature, seed.

A :class:`ChipConfig` is frozen and validated where it is made; every field is explained next
to it. Named presets (:data:`CHIP_PRESETS`) state every setting they use. The concepts follow
aihwkit's inference RPU configuration (Rasch et al., AICAS 2021: programming and read noise,
DAC/ADC resolution, global drift compensation) and CrossSim's tiling of large matrices into
fixed-size arrays whose partial sums are digitised and added (Sandia National Laboratories).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from birram.errors import ConfigError

CellKind = Literal["ideal", "rram"]
RangeMode = Literal["batch", "running"]
RANGE_MODES = ("batch", "running")
CELL_KINDS = ("ideal", "rram")


@dataclass(frozen=True)
class ChipConfig:
    """Everything that describes one chip. ``None`` means "ideal" where a field allows it."""

    cells: CellKind = "rram"  # cell technology: "ideal" (IdealCells) or "rram" (RRAMCells)
    tile_rows: int = 256  # inputs (word lines) per tile
    tile_cols: int = 256  # outputs (bit lines) per tile; each holds a differential pair
    n_levels: int | None = 16  # levels used per device; None: every level the cell model has
    dac_bits: int | None = 8  # signed input DAC resolution; None: ideal (no quantisation)
    adc_bits: int | None = 8  # signed ADC resolution per tile output; None: ideal
    dac_range: RangeMode = "batch"  # input full scale: max|x| of the batch, or running max
    adc_range: RangeMode = "batch"  # per-tile output full scale: batch max, or running max
    read_noise: bool = True  # log-normal read noise, sigma from the cell model
    read_noise_scale: float = 1.0  # multiplies the cell model's read-noise sigma
    programming_noise_scale: float = 1.0  # scales each programmed cell's deviation from its level
    stuck_hrs_fraction: float = 0.0  # fraction of devices stuck in the high-resistance state
    stuck_lrs_fraction: float = 0.0  # fraction of devices stuck in the low-resistance state
    # Fault-aware mapping: program the partner of a stuck device (found by a test read after
    # fabrication) so that the pair's difference is still the nearest to its weight.
    compensate_stuck: bool = False
    temp_k: float = 300.0  # operating temperature, K (drift is evaluated at it)
    endurance_writes: int | None = None  # writes a device survives; then it sticks. None: no limit
    verify_tolerance: float | None = None  # write-verify: |g - level| <= tol level spacings
    verify_max_attempts: int = 1  # programming attempts per write when verifying
    weight_range: float | None = None  # fixed max|w| mapped to the top level; None: per layer
    t_read_s: float = 10e-9  # duration of one read pulse, s
    v_read_v: float | None = None  # full-scale read voltage, V; None: the cell table's v_read
    drift_compensation: bool = False  # aihwkit-style global drift compensation per layer
    seed: int = 0  # the chip: faults and programming draws come from it

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> ChipConfig:
        """A copy with ``changes`` applied (and validated)."""
        unknown = sorted(set(changes) - set(FIELD_NAMES))
        if unknown:
            raise ConfigError(f"unknown chip field(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(FIELD_NAMES)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ChipConfig:
        return cls().replace(**values)


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ChipConfig))


def _validate(c: ChipConfig) -> None:
    def fail(field: str, value: Any, allowed: str) -> None:
        raise ConfigError(f"chip.{field}={value!r}; allowed: {allowed}")

    def integer(field: str, low: int, high: int | None = None, optional: bool = False) -> None:
        value = getattr(c, field)
        if value is None and optional:
            return
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        if not ok or (high is not None and value > high):
            upper = f" and <= {high}" if high is not None else ""
            fail(field, value, f"an integer >= {low}{upper}" + (" or None" if optional else ""))

    def real(field: str, low: float, high: float | None = None, optional: bool = False,
             open_low: bool = False) -> None:
        value = getattr(c, field)
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < low or (open_low and value == low) \
                or (high is not None and value > high):
            bound = f"> {low}" if open_low else f">= {low}"
            upper = f" and <= {high}" if high is not None else ""
            fail(field, value, f"a finite number {bound}{upper}" + (" or None" if optional else ""))

    if c.cells not in CELL_KINDS:
        fail("cells", c.cells, ", ".join(CELL_KINDS))
    integer("tile_rows", 1)
    integer("tile_cols", 1)
    integer("n_levels", 2, optional=True)
    integer("dac_bits", 2, 24, optional=True)
    integer("adc_bits", 2, 24, optional=True)
    for field in ("dac_range", "adc_range"):
        if getattr(c, field) not in RANGE_MODES:
            fail(field, getattr(c, field), ", ".join(RANGE_MODES))
    if not isinstance(c.read_noise, bool):
        fail("read_noise", c.read_noise, "true or false")
    real("read_noise_scale", 0.0)
    real("programming_noise_scale", 0.0)
    real("stuck_hrs_fraction", 0.0, 1.0)
    real("stuck_lrs_fraction", 0.0, 1.0)
    if c.stuck_hrs_fraction + c.stuck_lrs_fraction > 1.0:
        fail("stuck_lrs_fraction", c.stuck_lrs_fraction,
             f"at most 1 - stuck_hrs_fraction = {1.0 - c.stuck_hrs_fraction}")
    real("temp_k", 0.0, open_low=True)
    integer("endurance_writes", 1, optional=True)
    real("verify_tolerance", 0.0, open_low=True, optional=True)
    integer("verify_max_attempts", 1)
    real("weight_range", 0.0, open_low=True, optional=True)
    real("t_read_s", 0.0, open_low=True)
    real("v_read_v", 0.0, open_low=True, optional=True)
    if not isinstance(c.compensate_stuck, bool):
        fail("compensate_stuck", c.compensate_stuck, "true or false")
    if not isinstance(c.drift_compensation, bool):
        fail("drift_compensation", c.drift_compensation, "true or false")
    integer("seed", 0)


CHIP_PRESETS: dict[str, ChipConfig] = {
    # Noise-free, continuous conductances, ideal converters: the analog path equals the digital
    # matmul up to float rounding. The reference every non-ideality is measured against.
    "ideal": ChipConfig(cells="ideal", n_levels=None, dac_bits=None, adc_bits=None,
                        read_noise=False, stuck_hrs_fraction=0.0, stuck_lrs_fraction=0.0,
                        endurance_writes=None),
    # The default chip: RRAM cells with 16 levels, 8-bit converters, read noise, 0.5 % of
    # devices stuck (half at HRS, half at LRS, mapped around by their partners), write-verify
    # (within half a level spacing, at most 5 attempts) and an endurance of 1e6 writes.
    "rram-4bit": ChipConfig(cells="rram", n_levels=16, dac_bits=8, adc_bits=8, read_noise=True,
                            stuck_hrs_fraction=0.0025, stuck_lrs_fraction=0.0025,
                            compensate_stuck=True, verify_tolerance=0.5, verify_max_attempts=5,
                            endurance_writes=1_000_000),
    # A worse chip with no mitigation: 8 levels, 6-bit converters, twice the programming and
    # read spread, 2 % of devices stuck (not mapped around), no write-verify, endurance 1e5.
    "rram-noisy": ChipConfig(cells="rram", n_levels=8, dac_bits=6, adc_bits=6, read_noise=True,
                             read_noise_scale=2.0, programming_noise_scale=2.0,
                             stuck_hrs_fraction=0.01, stuck_lrs_fraction=0.01,
                             endurance_writes=100_000),
}
DEFAULT_PRESET = "rram-4bit"


def chip_preset(name: str, **changes: Any) -> ChipConfig:
    """The named preset, with optional field ``changes`` (e.g. ``seed=3``)."""
    if name not in CHIP_PRESETS:
        raise ConfigError(f"chip preset {name!r} unknown; allowed: {', '.join(CHIP_PRESETS)}")
    return CHIP_PRESETS[name].replace(**changes) if changes else CHIP_PRESETS[name]
