"""Fitting the device model to measured sweeps: recovery, validation, the parameter file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from birram.errors import ConfigError, DataError
from birram.rram.example_data import InstrumentModel, simulate_campaign, write_campaign
from birram.rram.fit import FIT_PARAMS, FitOptions, fit_sweeps, prepare_sweeps
from birram.rram.measured import MeasuredSweep, read_sweep_files
from birram.rram.param_file import ParamSet, load_param_set, resolve_param_set, write_param_set
from birram.rram.params import FILAMENT
from birram.rram.variability import Variability

EXACT = InstrumentModel(relative_sigma=0.0, noise_floor_a=0.0, digits=9, min_range_a=1e-15)


def _sweeps(campaign) -> list[MeasuredSweep]:
    """Every cycle of a campaign as a measured sweep, straight from memory."""
    out = []
    for d, name in enumerate(campaign.device_names):
        for lvl, icc in enumerate(campaign.levels_a):
            for c, reading in enumerate(campaign.reading_a[d, lvl]):
                out.append(MeasuredSweep(campaign.volts, reading, source=f"{name}-{lvl}",
                                         device=name, cycle=c + 1, compliance_a=float(icc)))
    return out


def test_recovers_known_parameters_from_noise_free_sweeps():
    truth = FILAMENT.with_(i0_a=FILAMENT.i0_a * 1.3, v0_v=FILAMENT.v0_v * 0.9,
                           dissolution=FILAMENT.dissolution * 0.8,
                           f_min_v_per_m=FILAMENT.f_min_v_per_m * 1.1)
    campaign = simulate_campaign(1, (1e-5, 1e-3), 1, params=truth,
                                 variability=Variability.none(), instrument=EXACT)
    result = fit_sweeps(_sweeps(campaign), FitOptions(current_floor_a=1e-13))
    fitted = result.devices["D01"]
    for name in FIT_PARAMS:
        assert fitted[name] == pytest.approx(getattr(truth, name), rel=0.05), name
    assert max(c["residual_rms_log10"] for c in result.cycles) < 0.02


def test_round_trip_through_instrument_files(tmp_path):
    """Noisy, quantised, clipped EasyEXPERT files of a small population: device parameters
    come back within 10 % (median over devices)."""
    campaign = simulate_campaign(3, (1e-5, 1e-3), 2, seed=3)
    sweeps = read_sweep_files(write_campaign(campaign, tmp_path))
    assert len(sweeps) == 3 * 2 * 2 and all(s.compliance_a for s in sweeps)
    result = fit_sweeps(sweeps, FitOptions(rounds=2, max_nfev=25))  # quick settings
    for name in FIT_PARAMS:
        truth = np.array([campaign.true_log[name][d].mean() for d in range(3)])
        fitted = np.log([result.devices[n][name] for n in campaign.device_names])
        assert np.median(np.abs(np.exp(fitted - truth) - 1)) < 0.10, name
    write_param_set(tmp_path / "params.json", result.param_set)
    loaded = load_param_set(tmp_path / "params.json")
    assert loaded.params == result.param_set.params
    assert dict(loaded.variability.d2d) == pytest.approx(result.sigmas["d2d"])


def test_bad_inputs_are_named():
    v = np.linspace(0, 1, 50)
    with pytest.raises(DataError, match="one polarity"):
        prepare_sweeps([MeasuredSweep(v, v * 1e-6, source="a.csv", compliance_a=1e-4)],
                       FitOptions())
    v = np.concatenate([np.linspace(0, 1, 30), np.linspace(0, -1, 30)])
    with pytest.raises(DataError, match="compliance"):
        prepare_sweeps([MeasuredSweep(v, v * 1e-6, source="a.csv")], FitOptions())
    with pytest.raises(DataError, match="none of the 1 sweep"):
        fit_sweeps([MeasuredSweep(v, v * 1e-6, source="a.csv", compliance_a=1e-4)])
    with pytest.raises(ConfigError, match="current_floor_a"):
        FitOptions(current_floor_a=-1).validated()
    with pytest.raises(ConfigError, match="filament"):
        FitOptions(base=FILAMENT.with_(rho_ohm_m=0.0, width_vel0_m_per_s=0.0,
                                       width_max_m=5e-9, width_min_m=5e-9)).validated()


def test_parameter_file_validation(tmp_path):
    good = ParamSet(FILAMENT.with_(name="mine", i0_a=1e-4), Variability.for_params(FILAMENT))
    write_param_set(tmp_path / "p.json", good)
    assert resolve_param_set(str(tmp_path / "p.json")).params.i0_a == 1e-4
    assert resolve_param_set("filament").params == FILAMENT
    data = json.loads((tmp_path / "p.json").read_text())
    cases = [({"params": {**data["params"], "i0_a": -1}}, "i0_a must be > 0"),
             ({"params": {"bogus_m": 1.0}}, "unknown device parameter"),
             ({"variability": {"d2d": {"i0_a": -0.1}}}, "sigma for i0_a"),
             ({"colour": "red"}, "unknown key"),
             ({"params": {"i0_a": "big"}}, "params.i0_a must be a finite number")]
    for change, message in cases:
        (tmp_path / "bad.json").write_text(json.dumps({**data, **change}))
        with pytest.raises(ConfigError, match=message) as err:
            load_param_set(tmp_path / "bad.json")
        assert "bad.json" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "nan.json").write_text('{"params": {"i0_a": NaN}}')
    with pytest.raises(ConfigError, match="nan.json"):
        load_param_set(tmp_path / "nan.json")
    (tmp_path / "p.toml").write_text('name = "t"\n[params]\ni0_a = 2e-4\n'
                                     '[variability.d2d]\ni0_a = 0.2\n')
    loaded = load_param_set(tmp_path / "p.toml")
    assert loaded.params.i0_a == 2e-4 and dict(loaded.variability.d2d) == {"i0_a": 0.2}
    with pytest.raises(ConfigError, match="cannot read"):
        load_param_set(tmp_path / "missing.json")


def test_estimates_stay_within_the_bounds():
    truth = FILAMENT.with_(i0_a=FILAMENT.i0_a * 2.0, v0_v=FILAMENT.v0_v * 0.7)
    campaign = simulate_campaign(1, (1e-4,), 1, params=truth, variability=Variability.none(),
                                 instrument=EXACT)
    bound = 0.1
    result = fit_sweeps(_sweeps(campaign), FitOptions(bound_ln=bound, rounds=1, max_nfev=5))
    for name in FIT_PARAMS:
        ratio = np.log(result.cycles[0]["params"][name] / getattr(FILAMENT, name))
        assert abs(ratio) <= bound + 1e-9, name
    assert result.cycles[0]["params"]["i0_a"] > FILAMENT.i0_a * 1.09  # pushed to the bound
    with pytest.raises(ConfigError, match="bound_ln"):
        FitOptions(bound_ln=0.0).validated()
    with pytest.raises(ConfigError, match="loss"):
        FitOptions(loss="square").validated()
