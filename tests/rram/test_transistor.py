"""The access-transistor model: square-law limits, sub-threshold slope, and the cell + transistor
operating point that the integrator solves."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from birram.errors import ConfigError
from birram.rram.drive import Compliance
from birram.rram.integrate import operating_point
from birram.rram.params import FILAMENT
from birram.rram.physics import TensorParams, filament_resistance, gap_voltage_at_current
from birram.rram.transistor import (
    Transistor,
    derived_constants,
    drain_current,
    on_resistance_ohm,
)


def current(t: Transistor, v_ds: float) -> float:
    return float(drain_current(derived_constants(t, 1), torch.tensor([v_ds],
                                                                      dtype=torch.float64)))


def test_above_threshold_it_is_the_square_law() -> None:
    t = Transistor(v_wl_v=2.0, v_th_v=0.5, k_a_per_v2=1e-3, slope_n=1.3, lambda_per_v=0.0)
    overdrive = 1.5
    # saturation: K / (2n) (V_WL - V_th)^2, within the EKV correction of order U_T / overdrive
    assert current(t, 3.0) == pytest.approx(1e-3 / 2.6 * overdrive**2, rel=0.05)
    # linear region: conductance K (V_WL - V_th) at small V_DS
    assert current(t, 1e-4) / 1e-4 == pytest.approx(1e-3 * overdrive, rel=0.05)
    assert on_resistance_ohm(t) == pytest.approx(1 / (1e-3 * overdrive), rel=0.05)
    with_clm = Transistor(v_wl_v=2.0, v_th_v=0.5, k_a_per_v2=1e-3, lambda_per_v=0.1)
    assert current(with_clm, 3.0) / current(with_clm, 2.0) == pytest.approx(1.3 / 1.2, rel=1e-3)


def test_below_threshold_the_current_falls_a_decade_per_n_ut_ln10() -> None:
    n, ut = 1.3, 0.025852
    low, lower = (current(Transistor(v_wl_v=v, v_th_v=0.6, slope_n=n), 1.0) for v in (0.2, 0.1))
    assert math.log10(low / lower) == pytest.approx(0.1 / (n * ut * math.log(10)), rel=0.02)


@settings(max_examples=40, deadline=None)
@given(v_wl=st.floats(0.0, 3.0), v_th=st.floats(0.2, 1.0), lam=st.floats(0.0, 0.2),
       v_ds=st.lists(st.floats(0.0, 3.0), min_size=2, max_size=8))
def test_drain_current_rises_with_drain_voltage_from_zero(v_wl: float, v_th: float, lam: float,
                                                          v_ds: list[float]) -> None:
    c = derived_constants(Transistor(v_wl_v=v_wl, v_th_v=v_th, lambda_per_v=lam), len(v_ds) + 1)
    v = torch.tensor(sorted([0.0, *v_ds]), dtype=torch.float64)
    i = drain_current(c, v)
    assert float(i[0]) == 0.0
    assert bool((torch.diff(i) >= 0).all())


def test_cell_and_transistor_share_the_applied_voltage() -> None:
    # the operating point satisfies V = V_DS + V_gap(I) + I R_filament with I = I_D(V_DS)
    p = TensorParams(FILAMENT)
    n = 5
    gap = torch.full((n,), 0.05e-9, dtype=torch.float64)
    width = torch.full((n,), 6e-9, dtype=torch.float64)
    v = torch.full((n,), 1.2, dtype=torch.float64)
    t = Transistor(v_wl_v=torch.linspace(0.6, 2.5, n, dtype=torch.float64), k_a_per_v2=1e-3)
    c = derived_constants(t, n)
    i, vg, _, _ = operating_point(p, v, gap, width, Compliance(mode="transistor", transistor=t),
                                  torch.zeros(n), transistor=c)
    ia = p.i0_a * (width / p.width_ref_m) ** 2 * torch.exp(-gap / p.g0_m)
    torch.testing.assert_close(vg, gap_voltage_at_current(i, ia, p.v0_v))
    v_cell = vg + i * filament_resistance(p, gap, width)
    v_ds = v - v_cell
    assert bool((v_ds > 0).all())
    torch.testing.assert_close(drain_current(c, v_ds), i, rtol=1e-9, atol=1e-15)
    assert bool((torch.diff(i) > 0).all())  # more word-line voltage, more current


def test_bad_transistor_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="needs transistor"):
        Compliance(mode="transistor").validated()
    with pytest.raises(ConfigError, match="k_a_per_v2 must be > 0"):
        Compliance(mode="transistor", transistor=Transistor(k_a_per_v2=0.0)).validated()
    with pytest.raises(ConfigError, match="v_wl_v must be finite"):
        Transistor(v_wl_v=torch.tensor([1.0, float("nan")])).validated()
    with pytest.raises(ConfigError, match="compliance mode must be"):
        Compliance(mode="gate").validated()  # type: ignore[arg-type]
