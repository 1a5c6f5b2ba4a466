"""Chip configurations: presets validate, bad values fail with one-line messages."""

from __future__ import annotations

import pytest

from birram.errors import ConfigError
from birram.hardware.chip import CHIP_PRESETS, ChipConfig, chip_preset


@pytest.mark.parametrize("name", sorted(CHIP_PRESETS))
def test_presets_validate_and_round_trip(name: str) -> None:
    config = chip_preset(name)
    assert ChipConfig.from_dict(config.to_dict()) == config


def test_preset_shapes() -> None:
    ideal, default, noisy = (chip_preset(n) for n in ("ideal", "rram-4bit", "rram-noisy"))
    assert ideal.n_levels is None and ideal.dac_bits is None and not ideal.read_noise
    assert default.n_levels == 16 and default.dac_bits == default.adc_bits == 8
    assert 0.001 <= default.stuck_hrs_fraction + default.stuck_lrs_fraction <= 0.01
    assert noisy.n_levels < default.n_levels
    assert noisy.stuck_hrs_fraction + noisy.stuck_lrs_fraction > (
        default.stuck_hrs_fraction + default.stuck_lrs_fraction)
    assert chip_preset("rram-4bit", seed=9).seed == 9


@pytest.mark.parametrize("field,value,message", [
    ("tile_rows", 0, "chip.tile_rows=0"),
    ("tile_cols", 2.5, "chip.tile_cols=2.5"),
    ("n_levels", 1, "chip.n_levels=1"),
    ("dac_bits", 1, "chip.dac_bits=1"),
    ("adc_bits", True, "chip.adc_bits=True"),
    ("dac_range", "minmax", "batch, running"),
    ("read_noise", 1, "true or false"),
    ("read_noise_scale", float("nan"), "chip.read_noise_scale=nan"),
    ("programming_noise_scale", -1.0, "chip.programming_noise_scale=-1.0"),
    ("stuck_hrs_fraction", 1.5, "<= 1.0"),
    ("temp_k", 0.0, "chip.temp_k=0.0"),
    ("temp_k", float("inf"), "finite"),
    ("endurance_writes", 0, "chip.endurance_writes=0"),
    ("verify_tolerance", 0.0, "chip.verify_tolerance=0.0"),
    ("verify_max_attempts", 0, "chip.verify_max_attempts=0"),
    ("weight_range", -0.1, "chip.weight_range=-0.1"),
    ("t_read_s", 0.0, "chip.t_read_s=0.0"),
    ("v_read_v", float("nan"), "chip.v_read_v=nan"),
    ("seed", -1, "chip.seed=-1"),
    ("cells", "pcm", "ideal, rram"),
])
def test_bad_values_fail_with_a_one_line_message(field: str, value: object, message: str
                                                 ) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("+", r"\+")) as e:
        ChipConfig().replace(**{field: value})
    assert "\n" not in str(e.value)


def test_stuck_fractions_cannot_exceed_one_together() -> None:
    with pytest.raises(ConfigError, match="stuck_lrs_fraction"):
        ChipConfig(stuck_hrs_fraction=0.6, stuck_lrs_fraction=0.5)


def test_unknown_fields_and_presets() -> None:
    with pytest.raises(ConfigError, match="unknown chip field"):
        ChipConfig.from_dict({"tile_size": 128})
    with pytest.raises(ConfigError, match="allowed: ideal, rram-4bit, rram-noisy"):
        chip_preset("rram-2bit")
