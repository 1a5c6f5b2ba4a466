"""RRAM cells from the device simulator: levels, programming noise, write-verify, energy,
retention, and the on-disk calibration cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from birram.errors import ConfigError, DataError
from birram.hardware import calibration as cal
from birram.hardware.calibration import ProgrammingConfig, simulate_programming
from birram.hardware.retention import model_rates
from birram.hardware.rram_cells import RRAMCells, rram_cells, write_verify
from birram.rram.params import FILAMENT

SMALL = {"n_levels": 4, "devices_per_level": 200, "pilot_devices": 100}
DAY_S, TEN_YEARS_S = 86400.0, 10 * 365.25 * 86400.0
ROOM_K, HOT_K = 298.15, 358.15


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cells-cache")


@pytest.fixture(scope="module")
def cells(cache_dir) -> RRAMCells:
    return rram_cells(**SMALL, cache_dir=cache_dir)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_level_means_rise_evenly_from_the_reset_state(cells):
    table = cells.levels
    assert table.icc_a[0] == 0 and np.all(np.diff(table.icc_a) > 0)
    assert table.icc_a[-1] == pytest.approx(100e-6)
    steps = np.diff(table.g_mean_s)
    assert np.all(steps > 0)
    assert np.all(np.abs(steps / steps.mean() - 1) < 0.15), steps
    # the top level follows R_LRS ~ V_C / I_CC with V_C of a few tenths of a volt to ~1 V
    v_c = table.icc_a[-1] / table.g_mean_s[-1]
    assert 0.3 < v_c < 1.5


def test_same_seed_same_conductances(cells):
    level = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    a, b = cells.program(level, gen(5)), cells.program(level, gen(5))
    assert a.dtype == torch.float64 and a.shape == level.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, cells.program(level, gen(6)))


def test_programming_from_the_table_matches_simulating_each_cell(cells):
    """Per-cell simulation (fresh seed) and draws from the calibrated table: same law."""
    config = cells.config
    per_level = 200
    icc = torch.as_tensor(cells.levels.icc_a).repeat_interleave(per_level)
    history = cal.draw_history(torch.as_tensor(cells.levels.icc_a[1:]), icc.numel(), gen(101))
    simulated = simulate_programming(config, icc, history, gen(102)).g_read_s
    level = torch.arange(config.n_levels).repeat_interleave(per_level)
    drawn = cells.read(cells.program(level, gen(103)), gen(104))
    for k in range(config.n_levels):
        sel = level == k
        assert ks_2samp(simulated[sel].numpy(), drawn[sel].numpy()).pvalue > 0.01, k


def test_write_verify_narrows_the_spread_and_counts_every_pulse(cells):
    n, attempts = 2000, 8
    level = torch.arange(cells.levels.n_levels).repeat_interleave(n)
    result = write_verify(cells, level, tolerance=0.1, max_attempts=attempts,
                          generator=gen(7))
    plain = cells.program(level, gen(8))
    per_write = torch.where(level > 0, 2, 1)
    assert torch.all(result.pulses >= per_write)
    assert torch.all(result.pulses <= attempts * per_write)
    assert torch.all(result.pulses == result.reads * per_write)
    assert bool((result.pulses > per_write).any())  # some cells needed another try
    assert torch.allclose(result.energy_j, result.reads * cells.write_energy(level))
    for k in range(1, cells.levels.n_levels):
        sel = level == k
        assert result.g_s[sel].std() < 0.8 * plain[sel].std()
    # cells that verified lie within the band up to the read noise of the verify read
    mean = torch.from_numpy(cells.levels.g_mean_s)[level]
    ok = result.verified & (level > 0)
    band = 0.1 * cells.level_spacing_s + 5 * cells.read_noise_sigma * mean
    assert torch.all((result.g_s - mean).abs()[ok] <= band[ok])


def test_write_verify_rejects_bad_settings(cells):
    level = torch.ones(3, dtype=torch.int64)
    for kwargs in ({"tolerance": 0.0, "max_attempts": 3},
                   {"tolerance": math.nan, "max_attempts": 3},
                   {"tolerance": 0.5, "max_attempts": 0}):
        with pytest.raises(ConfigError):
            write_verify(cells, level, generator=gen(0), **kwargs)


def test_write_energy_is_positive_and_grows_with_compliance(cells):
    energy = cells.write_energy(torch.arange(cells.levels.n_levels))
    assert energy.dtype == torch.float64
    assert torch.all(energy > 0)
    assert torch.all(torch.diff(energy) > 0)
    # the SET plateau alone draws about V_set * I_CC * width from the driver
    pulses = cells.config.pulses
    top = pulses.set_v * cells.levels.icc_a[-1] * pulses.set_width_s
    assert 0.8 * top < float(energy[-1]) < 1.3 * top


def test_retention_loss_grows_with_time_and_temperature(cells):
    level = torch.arange(cells.levels.n_levels)
    g = torch.from_numpy(cells.levels.g_mean_s)
    assert cells.drift(g, level, 0.0, HOT_K) is g
    loss = {(t, temp): 1 - cells.drift(g, level, t, temp) / g
            for t in (DAY_S, TEN_YEARS_S) for temp in (ROOM_K, HOT_K)}
    assert torch.all(loss[(TEN_YEARS_S, HOT_K)] > loss[(DAY_S, HOT_K)])
    assert torch.all(loss[(TEN_YEARS_S, HOT_K)] > loss[(TEN_YEARS_S, ROOM_K)])
    assert torch.all(loss[(DAY_S, HOT_K)] > loss[(DAY_S, ROOM_K)])
    assert torch.all(loss[(TEN_YEARS_S, ROOM_K)] >= 0)
    # the top level meets a 10-year, 85 C retention specification
    assert float(loss[(TEN_YEARS_S, HOT_K)][-1]) < 0.1
    assert torch.equal(cells.drift(g, level, TEN_YEARS_S, HOT_K),
                       cells.drift(g, level, TEN_YEARS_S, HOT_K))


@settings(max_examples=40, deadline=None)
@given(g=st.floats(1e-8, 1e-3), level=st.integers(0, SMALL["n_levels"] - 1),
       t1=st.floats(0, 1e9), t2=st.floats(0, 1e9), c1=st.floats(-20, 150),
       c2=st.floats(-20, 150))
def test_drift_never_raises_and_is_monotone_in_time_and_temperature(cells, g, level, t1, t2,
                                                                    c1, c2):
    g_t = torch.tensor([g], dtype=torch.float64)
    lv = torch.tensor([level])
    (t_lo, t_hi), (c_lo, c_hi) = sorted((t1, t2)), sorted((c1, c2))

    def after(t: float, celsius: float) -> float:
        return float(cells.drift(g_t, lv, t, celsius + 273.15))

    assert after(t_hi, c_lo) <= after(t_lo, c_lo) <= g
    assert after(t_lo, c_hi) <= after(t_lo, c_lo)


def test_the_switching_model_alone_does_not_move_at_zero_bias():
    gap = torch.tensor([0.0, 0.6e-9, 1.2e-9], dtype=torch.float64)
    width = torch.tensor([4e-9, 1.5e-9, 1.2e-9], dtype=torch.float64)
    for temp in (ROOM_K, HOT_K):
        gap_rate, width_rate = model_rates(FILAMENT, gap, width, 0.0, temp)
        assert torch.all(gap_rate == 0) and torch.all(width_rate == 0)
        gap_rate, width_rate = model_rates(FILAMENT, gap, width, 0.1, temp)
        assert torch.all(gap_rate == 0) and torch.all(width_rate > 0)  # read disturb


def test_cache_hit_returns_the_identical_table(cells, cache_dir):
    files = list(cache_dir.glob("rram-cells-*.npz"))
    assert len(files) == 1 and not list(cache_dir.glob(".*tmp"))
    again = rram_cells(**SMALL, cache_dir=cache_dir)
    assert again.calibration.seconds == 0.0  # loaded, not simulated
    for name in ("icc_a", "g_samples_s", "write_energy_j"):
        assert np.array_equal(getattr(again.levels, name), getattr(cells.levels, name))
    assert again.levels.key == cells.levels.key


def _damage_and_reload(cells, cache_dir, damage) -> None:
    path = cal.cache_path(cells.config, cache_dir)
    original = path.read_bytes()
    damage(path, original)
    with pytest.raises(DataError, match=path.name):
        cal.load_calibration(cells.config, path)
    with pytest.warns(UserWarning, match=path.name):
        rebuilt = rram_cells(**SMALL, cache_dir=cache_dir)
    assert np.array_equal(rebuilt.levels.g_samples_s, cells.levels.g_samples_s)
    assert path.read_bytes() == original


def test_truncated_cache_is_detected_and_regenerated(cells, cache_dir):
    _damage_and_reload(cells, cache_dir, lambda p, raw: p.write_bytes(raw[: len(raw) // 2]))


def test_flipped_bytes_in_the_cache_are_detected(cells, cache_dir):
    def flip(path, raw):
        data = bytearray(raw)
        start = raw.index(b"g_samples_s.npy") + 400  # inside that array's data
        for i in range(start, start + 8):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))

    _damage_and_reload(cells, cache_dir, flip)


def test_nan_in_the_cache_is_detected(cells, cache_dir):
    def poison(path, raw):
        bad = cal.Calibration(cells.levels, cells.calibration.gap_mean_m * np.nan,
                              cells.calibration.width_mean_m, 0.0)
        cal.save_calibration(bad, path)

    _damage_and_reload(cells, cache_dir, poison)


@pytest.mark.parametrize("changes", [
    {"n_levels": 1}, {"n_levels": 65}, {"n_levels": 4.0}, {"icc_max_a": math.nan},
    {"icc_min_a": math.inf}, {"icc_min_a": 200e-6, "icc_max_a": 100e-6},
    {"icc_min_a": -1e-6}, {"v_read_v": 1.0}, {"devices_per_level": 1},
    {"variability_scale": -1.0},
])
def test_bad_arguments_raise_one_line_config_errors(changes):
    with pytest.raises(ConfigError) as err:
        ProgrammingConfig(**changes)
    assert "\n" not in str(err.value)


def test_levels_outside_the_table_are_refused(cells):
    with pytest.raises(ConfigError):
        cells.program(torch.tensor([cells.levels.n_levels]), gen(0))
    with pytest.raises(ConfigError):
        cells.write_energy(torch.tensor([-1]))
    with pytest.raises(ConfigError):
        cells.drift(torch.ones(1, dtype=torch.float64), torch.tensor([0]), -1.0, ROOM_K)
