"""The default filament set obeys the empirical laws of filamentary RRAM on the dataset's sweep.

Measured oxide cells follow the "universal" relation ``R_LRS ~ V_c / I_CC`` with V_c a few
tenths of a volt, and RESET starts at a current close to the compliance current that made the
filament (Ielmini, IEEE Trans. Electron Devices 58, 4309, 2011). Checked per compliance level on
the medians of a small population with the dataset's own variability and sweep.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birram.rram.cycling import SweepConfig, run_cycles
from birram.rram.dataset import RRAMDatasetConfig
from birram.rram.params import FILAMENT
from birram.rram.variability import Variability

LEVELS_A = np.geomspace(10e-6, 1e-3, 5)
DEVICES = 8


@pytest.fixture(scope="module")
def per_level() -> dict[str, np.ndarray]:
    """Features ``[level, cycle * device]`` at the dataset's sweep and variability."""
    cfg = RRAMDatasetConfig()
    n = LEVELS_A.size * DEVICES
    level_of = torch.arange(n) // DEVICES
    result = run_cycles(
        FILAMENT, torch.as_tensor(LEVELS_A)[level_of], n, cycles=2,
        variability=Variability.for_params(FILAMENT, scale=cfg.variability_scale), seed=5,
        sweep=SweepConfig(cfg.v_set_max, cfg.v_reset_max, cfg.sweep_rate_v_per_s,
                          cfg.sweep_step_v),
        device_ids=torch.arange(n) % DEVICES, n_devices=DEVICES)
    # [cycles, n] -> [levels, cycles * devices]
    return {k: v.numpy().reshape(-1, LEVELS_A.size, DEVICES).transpose(1, 0, 2)
            .reshape(LEVELS_A.size, -1) for k, v in result.features.items()}


def test_r_lrs_times_compliance_is_a_few_tenths_of_a_volt(per_level) -> None:
    v_c = np.median(per_level["r_lrs_ohm"], 1) * LEVELS_A
    assert np.all((v_c > 0.2) & (v_c < 0.5)), v_c


def test_reset_current_is_close_to_the_compliance_current(per_level) -> None:
    ratio = np.median(per_level["i_reset_a"], 1) / LEVELS_A
    assert np.all((ratio > 0.5) & (ratio < 1.5)), ratio


def test_every_cycle_reaches_compliance_and_switches(per_level) -> None:
    assert np.all(per_level["i_set_max_a"] >= 0.98 * LEVELS_A[:, None])
    assert np.all(per_level["r_hrs_ohm"] > 10 * per_level["r_lrs_ohm"])


def test_set_and_reset_voltages_are_those_of_oxide_cells(per_level) -> None:
    # SET at the gap closure well above the read voltage, RESET at about V_c: below |V_set|
    v_set, v_reset = np.median(per_level["v_set_v"], 1), np.median(per_level["v_reset_v"], 1)
    assert np.all((v_set > 0.4) & (v_set < 1.2)), v_set
    assert np.all((v_reset < -0.2) & (v_reset > -0.6)), v_reset
    assert np.all(-v_reset < v_set)
