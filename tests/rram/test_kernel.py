"""The compiled CPU integrator against the tensor integrator, and its own noise."""

from __future__ import annotations

import pytest
import torch

from birram.errors import ConfigError
from birram.rram import integrate, kernel
from birram.rram.drive import Compliance, Waveform, triangular_sweep
from birram.rram.integrate import IntegratorOptions, initial_state, simulate
from birram.rram.params import FILAMENT, PARAM_SETS, STANFORD_V1
from birram.rram.physics import TensorParams
from birram.rram.transistor import Transistor
from birram.rram.variability import Variability, device_params, draw_normals


def _population(name: str, n: int) -> TensorParams:
    base = PARAM_SETS[name]
    var = Variability.for_params(base)
    return device_params(base, var, draw_normals(var.d2d, n, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name", list(PARAM_SETS))
@pytest.mark.parametrize("mode", ["ideal", "1t1r", "none"])
def test_backends_agree(name, mode):
    n = 12
    p = _population(name, n)
    icc = torch.logspace(-5, -3, n, dtype=torch.float64)
    wave = triangular_sweep(1.6, 1.7, 1e4, 2e-2)
    out = {}
    for backend in ("torch", "compiled"):
        trace, state = simulate(p, wave, Compliance(icc, mode), initial_state(p, n), None,
                                IntegratorOptions(backend=backend), record=("current", "gap"))
        out[backend] = trace, state
    (t_tr, t_st), (c_tr, c_st) = out["torch"], out["compiled"]
    assert c_tr.current_a.shape == t_tr.current_a.shape == (wave.steps, n)
    torch.testing.assert_close(c_tr.current_a, t_tr.current_a, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(c_tr.gap_m, t_tr.gap_m, rtol=1e-5, atol=1e-15)
    torch.testing.assert_close(c_st.gap_m, t_st.gap_m, rtol=1e-6, atol=1e-15)
    torch.testing.assert_close(c_st.width_m, t_st.width_m, rtol=1e-6, atol=1e-15)
    # the tensor path also computes sub-steps for devices that have already finished
    assert c_tr.substeps <= t_tr.substeps


@pytest.mark.parametrize("name", ["stanford-v1", "filament"])
def test_backends_agree_with_an_access_transistor(name):
    # word-line voltages from below threshold to fully on, threshold varying per device
    n = 8
    p = _population(name, n)
    transistor = Transistor(v_wl_v=torch.linspace(0.3, 2.5, n, dtype=torch.float64),
                            v_th_v=torch.linspace(0.45, 0.6, n, dtype=torch.float64),
                            k_a_per_v2=5e-4)
    compliance = Compliance(mode="transistor", transistor=transistor).validated()
    wave = triangular_sweep(1.6, 1.7, 1e4, 5e-2)
    out = {}
    for backend in ("torch", "compiled"):
        out[backend] = simulate(p, wave, compliance, initial_state(p, n), None,
                                IntegratorOptions(backend=backend), record=("current", "gap"))
    (t_tr, t_st), (c_tr, c_st) = out["torch"], out["compiled"]
    torch.testing.assert_close(c_tr.current_a, t_tr.current_a, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(c_st.gap_m, t_st.gap_m, rtol=1e-6, atol=1e-15)
    torch.testing.assert_close(c_st.width_m, t_st.width_m, rtol=1e-6, atol=1e-15)
    # below threshold the transistor holds the SET current under 0.1 uA; fully on it does not
    peak = t_tr.current_a.max(0).values
    assert peak[0] < 1e-7 and peak[-1] > 1e-4


@pytest.mark.parametrize("backend", ["torch", "compiled"])
def test_fixed_step_mode_takes_equal_substeps(backend):
    p = TensorParams(STANFORD_V1)
    wave = triangular_sweep(1.5, 1.6, 1e4, 2e-2)
    opts = IntegratorOptions(fixed_substeps=8, backend=backend)
    trace, _ = simulate(p, wave, Compliance(1e-3), initial_state(p, 3), options=opts)
    zero_length = int((wave.dt_s == 0).sum())  # a zero-length step takes one sub-step
    assert trace.substeps == 3 * (8 * (wave.steps - zero_length) + zero_length)


def test_fixed_steps_converge_to_the_adaptive_solution():
    # a SET pulse: too few fixed sub-steps overshoot, many approach the adaptive result
    from birram.rram.drive import pulse
    p = TensorParams(STANFORD_V1)
    wave = pulse(1.6, 2e-6, steps=20)
    final = {}
    for label, opts in (("adaptive", IntegratorOptions()),
                        ("coarse", IntegratorOptions(fixed_substeps=1)),
                        ("fine", IntegratorOptions(fixed_substeps=400))):
        trace, _ = simulate(p, wave, Compliance(1e-3), initial_state(p, 1), options=opts,
                            record=("gap",))
        final[label] = trace.gap_m[:, 0].double()
    err_fine = (final["fine"] - final["adaptive"]).abs().max()
    err_coarse = (final["coarse"] - final["adaptive"]).abs().max()
    assert err_fine < 0.5 * err_coarse


def _hold(volts: float, seconds: float, steps: int) -> Waveform:
    times = torch.linspace(0, seconds, steps + 1, dtype=torch.float64)
    volts_t = torch.full_like(times, volts)
    return Waveform(times, volts_t, torch.zeros_like(times, dtype=torch.int8))


@pytest.mark.parametrize("backend", ["torch", "compiled"])
def test_gap_noise_is_a_wiener_process(backend):
    # at 0 V the gap does not drift: it diffuses with variance sigma^2 t, however the time is cut
    noise = 2e-7
    params = STANFORD_V1.with_(gap_noise_m_per_sqrt_s=noise)
    p = TensorParams(params)
    sigma = noise / (1 + torch.exp(torch.tensor((params.t_crit_k - params.t_ambient_k)
                                                / params.t_smooth_k))).item()
    seconds, n = 1e-6, 4000
    variances = []
    for steps in (1, 50):
        state = initial_state(p, n, gap_m=1.0e-9)
        gen = torch.Generator().manual_seed(3)
        _, out = simulate(p, _hold(0.0, seconds, steps), Compliance(1e-3), state, gen,
                          IntegratorOptions(backend=backend), record=())
        variances.append(float((out.gap_m - 1.0e-9).var()))
    expected = sigma**2 * seconds
    for var in variances:
        assert var == pytest.approx(expected, rel=0.1)


def test_compiled_noise_is_seeded_and_thread_independent():
    params = FILAMENT.with_(gap_noise_m_per_sqrt_s=1e-7)
    p = TensorParams(params)
    wave = triangular_sweep(1.5, 1.6, 1e4, 2e-2)
    n = 2 * integrate.KERNEL_MIN_CHUNK + 8  # enough devices to split over two threads
    runs = []
    for seed, threads in ((7, 1), (7, 2), (8, 2)):
        trace, _ = simulate(p, wave, Compliance(1e-4), initial_state(p, n),
                            torch.Generator().manual_seed(seed),
                            IntegratorOptions(backend="compiled", threads=threads))
        runs.append(trace.current_a)
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_compiled_backend_without_numba_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(kernel, "available", lambda: False)
    p = TensorParams(STANFORD_V1)
    with pytest.raises(ConfigError, match="numba"):
        simulate(p, triangular_sweep(), Compliance(1e-3), initial_state(p, 1),
                 options=IntegratorOptions(backend="compiled"))
    # auto falls back to tensors
    trace, _ = simulate(p, triangular_sweep(1.5, 1.6, 1e4, 5e-2), Compliance(1e-3),
                        initial_state(p, 1))
    assert integrate.kernel is kernel and trace.current_a is not None
