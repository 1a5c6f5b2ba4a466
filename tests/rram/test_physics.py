"""Published checks of the Stanford-PKU v1 model and basic laws of the simulator."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from birram.errors import ConfigError
from birram.rram import physics
from birram.rram.drive import Compliance, pulse, sweep_half, triangular_sweep
from birram.rram.integrate import IntegratorOptions, initial_state, simulate
from birram.rram.params import FILAMENT, PARAM_SETS, STANFORD_V1, get_params, validate_params
from birram.rram.physics import TensorParams


def _read(params, gap_m: float) -> float:
    p = TensorParams(params)
    g = torch.tensor([gap_m], dtype=torch.float64)
    return float(physics.read_resistance(p, g, torch.full_like(g, params.width_ref_m), 0.1))


def test_v1_read_resistance_matches_published_values():
    assert _read(STANFORD_V1, 0.2e-9) == pytest.approx(542.0, rel=0.02)
    assert _read(STANFORD_V1, 1.7e-9) == pytest.approx(218.6e3, rel=0.02)


def test_v1_set_threshold_from_gap_max():
    assert STANFORD_V1.set_threshold_v() == pytest.approx(1.39, abs=0.01)


def _set_ramp(params, v_peak: float, icc: float, n: int = 1):
    p = TensorParams(params)
    state = initial_state(p, n)
    trace, state = simulate(p, sweep_half(v_peak, 1e4, 5e-3), Compliance(icc), state,
                            record=("current", "gap"))
    return trace, state


def test_no_set_below_field_threshold():
    threshold = STANFORD_V1.set_threshold_v()
    _, state = _set_ramp(STANFORD_V1, threshold - 0.02, 1e-3)
    assert float(state.gap_m[0]) == pytest.approx(STANFORD_V1.gap_max_m)
    _, state = _set_ramp(STANFORD_V1, threshold + 0.1, 1e-3)
    assert float(state.gap_m[0]) < STANFORD_V1.gap_max_m - 0.3e-9


def test_v1_cannot_set_below_its_minimum_compliance():
    # the clamped voltage stays under the field threshold: about 146 uA for the v1 defaults
    _, low = _set_ramp(STANFORD_V1, 1.5, 100e-6)
    _, high = _set_ramp(STANFORD_V1, 1.5, 300e-6)
    assert float(low.gap_m[0]) == pytest.approx(STANFORD_V1.gap_max_m)
    assert float(high.gap_m[0]) < STANFORD_V1.gap_max_m - 0.2e-9


def test_compliance_clamps_the_set_current():
    icc = torch.tensor([300e-6, 1e-3, 3e-3], dtype=torch.float64)
    p = TensorParams(STANFORD_V1)
    trace, _ = simulate(p, sweep_half(1.5), Compliance(icc), initial_state(p, 3))
    peak = trace.current_a.double().max(0).values
    assert torch.allclose(peak, icc, rtol=1e-5)


def test_transistor_limit_stays_below_compliance_and_conserves_voltage():
    p = TensorParams(STANFORD_V1)
    trace, _ = simulate(p, sweep_half(1.8), Compliance(1e-3, "1t1r"), initial_state(p, 2))
    peak = float(trace.current_a.double().max())
    assert 0.5e-3 < peak < 1e-3


def test_gap_rate_is_arrhenius_with_field_lowered_barrier():
    # ln|rate| vs 1/T is a line whose slope is the barrier lowered by the field
    p = TensorParams(STANFORD_V1)
    g = torch.full((4,), 1.7e-9, dtype=torch.float64)
    v = torch.full((4,), 1.45, dtype=torch.float64)
    temps = torch.tensor([300.0, 330.0, 360.0, 390.0], dtype=torch.float64)
    rate = physics.gap_rate(p, g, v, temps).abs()
    slope = torch.diff(rate.log()) / torch.diff(1 / (physics.KB_EV_PER_K * temps))
    gamma = float(physics.field_factor(p, g[:1]))
    barrier = STANFORD_V1.ea_ev - gamma * STANFORD_V1.a0_m / STANFORD_V1.tox_m * 1.45
    assert torch.allclose(slope, torch.full_like(slope, -barrier), rtol=1e-3)


def test_switching_is_faster_at_higher_temperature():
    times = []
    for t_k in (298.0, 358.0):
        params = STANFORD_V1.with_(t_ambient_k=t_k)
        p = TensorParams(params)
        wave = pulse(1.45, 20e-6, rise_s=1e-9, steps=400)
        trace, _ = simulate(p, wave, Compliance(1e-3), initial_state(p, 1), record=("gap",))
        moved = (trace.gap_m[:, 0] < params.gap_max_m - 0.5e-9).nonzero()
        times.append(float(wave.times_s[moved[0, 0]]) if len(moved) else math.inf)
    assert times[1] < 0.5 * times[0] < math.inf


def test_halving_the_step_changes_switching_voltage_little():
    params = STANFORD_V1.with_(gap_noise_m_per_sqrt_s=2e-8)
    volts = []
    for step, opts in ((5e-3, IntegratorOptions()),
                       (2.5e-3, IntegratorOptions(max_gap_step_m=0.01e-9))):
        p = TensorParams(params)
        wave = sweep_half(1.6, 1e4, step)
        gen = torch.Generator().manual_seed(0)
        trace, _ = simulate(p, wave, Compliance(1e-3), initial_state(p, 64), gen, opts,
                            record=("gap",))
        moved = trace.gap_m < params.gap_max_m - 0.5e-9
        first = moved.float().argmax(0)
        volts.append(float(wave.volts[first].mean()))
    assert volts[0] == pytest.approx(volts[1], rel=0.02)


def test_fixed_step_mode_agrees_with_adaptive_when_not_stiff():
    # a slow SET just above threshold: fine fixed steps and adaptive steps end alike
    p = TensorParams(STANFORD_V1)
    wave = pulse(1.45, 3e-6, rise_s=1e-9, steps=100)
    _, fixed = simulate(p, wave, Compliance(1e-3), initial_state(p, 1),
                        options=IntegratorOptions(fixed_substeps=20))
    _, adaptive = simulate(p, wave, Compliance(1e-3), initial_state(p, 1))
    assert float(adaptive.gap_m[0]) < STANFORD_V1.gap_max_m - 0.3e-9
    assert float(fixed.gap_m[0]) == pytest.approx(float(adaptive.gap_m[0]), rel=0.05)


@settings(max_examples=25, deadline=None)
@given(volts=st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=12),
       gap_max_nm=st.floats(1.0, 2.5), i0=st.floats(1e-5, 1e-2), rth=st.floats(0.0, 2e5),
       noise=st.floats(0.0, 1e-6), model=st.sampled_from(list(PARAM_SETS)))
def test_state_stays_within_bounds(volts, gap_max_nm, i0, rth, noise, model):
    base = get_params(model)
    params = base.with_(gap_max_m=min(gap_max_nm * 1e-9, 0.9 * base.l0_m), i0_a=i0,
                        rth_k_per_w=rth, gap_noise_m_per_sqrt_s=noise)
    p = TensorParams(validate_params(params))
    v = torch.tensor([0.0, *volts], dtype=torch.float64)
    from birram.rram.drive import Waveform
    wave = Waveform(torch.arange(v.numel(), dtype=torch.float64) * 1e-6, v,
                    torch.sign(v).to(torch.int8))
    trace, state = simulate(p, wave, Compliance(1e-3), initial_state(p, 4),
                            torch.Generator().manual_seed(1), record=("gap", "width"))
    assert bool(torch.isfinite(trace.gap_m).all())
    lo, hi = params.gap_min_m, params.gap_max_m
    assert float(state.gap_m.min()) >= lo - 1e-15 and float(state.gap_m.max()) <= hi + 1e-15
    assert float(state.width_m.min()) >= min(params.width_min_m, params.width_ref_m) - 1e-15
    assert float(state.width_m.max()) <= max(params.width_max_m, params.width_ref_m) + 1e-15


def test_same_seed_same_output():
    params = FILAMENT.with_(gap_noise_m_per_sqrt_s=1e-7)
    outs = []
    for _ in range(2):
        p = TensorParams(params)
        gen = torch.Generator().manual_seed(7)
        trace, _ = simulate(p, triangular_sweep(1.5, 1.6, 1e4, 1e-2), Compliance(1e-4),
                            initial_state(p, 8), gen)
        outs.append(trace.current_a)
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("change, word", [
    ({"tox_m": -1e-9}, "tox_m"), ({"gap_min_m": 2e-9}, "gap_min_m"),
    ({"i0_a": float("nan")}, "i0_a"), ({"rth_k_per_w": -1.0}, "rth_k_per_w")])
def test_bad_parameters_are_named(change, word):
    with pytest.raises(ConfigError, match=word):
        validate_params(STANFORD_V1.with_(**change))


def test_bad_compliance_is_named():
    with pytest.raises(ConfigError, match="compliance"):
        Compliance(0.0).validated()
    with pytest.raises(ConfigError, match="compliance"):
        Compliance(float("nan")).validated()
