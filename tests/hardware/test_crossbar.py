"""The crossbar layer's arithmetic: exact when ideal, bounded when quantised, unbiased noise,
straight-through gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hw_helpers import NoisyCells, ideal_config, layer
from torch import nn

from birram.errors import ConfigError
from birram.hardware.converters import steps
from birram.hardware.ideal_cells import IdealCells


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("n_in,n_out,tile", [(5, 3, (4, 4)), (300, 270, (256, 256)),
                                             (17, 33, (8, 5)), (64, 64, (64, 64))])
def test_ideal_crossbar_equals_matmul(n_in: int, n_out: int, tile: tuple[int, int]) -> None:
    xbar = layer(n_in, n_out, ideal_config(tile_rows=tile[0], tile_cols=tile[1]))
    x = torch.randn(2, 7, n_in, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        analog = xbar(x)
        digital = F.linear(x, xbar.weight, xbar.bias)
    assert analog.shape == (2, 7, n_out)
    assert rel_error(analog, digital) < 1e-5


def quantisation_bound(xbar, x: torch.Tensor, n_levels: int | None, dac_bits: int | None,
                       adc_bits: int | None) -> torch.Tensor:
    """Per-output bound on |analog - exact| for evenly spaced levels and batch-ranged
    converters: sum|x| * (half a level step) + sum|w_q| * (half a DAC step)
    + one ADC half step per row tile (each over that tile's own full scale)."""
    cfg = xbar.config
    x = x.double()
    w = xbar.weight.detach().double()
    w_q = xbar.effective_weight()
    bound = torch.zeros(x.shape[0], w.shape[0], dtype=torch.float64)
    if n_levels is not None:
        bound += x.abs().sum(1, keepdim=True) * (float(xbar.w_max) / (n_levels - 1) / 2)
    x_q = x
    if dac_bits is not None:
        x_fs = x.abs().max()
        n = steps(dac_bits)
        x_q = torch.round(x / x_fs * n) / n * x_fs
        bound += (x_fs / (2 * n)) * w_q.abs().sum(1)[None, :]
    if adc_bits is not None:
        for r0 in range(0, w.shape[1], cfg.tile_rows):
            partial = x_q[:, r0:r0 + cfg.tile_rows] @ w_q[:, r0:r0 + cfg.tile_rows].T
            for c0 in range(0, w.shape[0], cfg.tile_cols):
                fs = partial[:, c0:c0 + cfg.tile_cols].abs().max()
                bound[:, c0:c0 + cfg.tile_cols] += fs / (2 * steps(adc_bits))
    # float32 arithmetic in the layer: a small relative slack on the exact result's scale
    return bound + 1e-5 * (x.abs() @ w.abs().T) + 1e-7


@pytest.mark.parametrize("n_levels,dac_bits,adc_bits", [(16, None, None), (None, 6, None),
                                                        (None, None, 5), (8, 6, 6), (4, 4, 4)])
def test_quantisation_stays_inside_its_bound(n_levels: int | None, dac_bits: int | None,
                                             adc_bits: int | None) -> None:
    cfg = ideal_config(n_levels=n_levels, dac_bits=dac_bits, adc_bits=adc_bits, tile_rows=32,
                       tile_cols=16)
    xbar = layer(70, 40, cfg, IdealCells(n_levels=n_levels), seed=3)
    x = torch.randn(50, 70, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = xbar(x).double() - xbar.bias.double()
    exact = x.double() @ xbar.weight.detach().double().T
    error = (out - exact).abs()
    bound = quantisation_bound(xbar, x, n_levels, dac_bits, adc_bits)
    assert bool((error <= bound).all()), float((error - bound).max())
    assert float(error.max()) > 1e-4  # quantisation did happen


def test_levels_are_evenly_spaced_weights() -> None:
    xbar = layer(20, 10, ideal_config(n_levels=5), IdealCells(n_levels=5))
    w_q = xbar.effective_weight()
    step = float(xbar.w_max) / 4
    k = w_q / step
    assert torch.allclose(k, k.round(), atol=1e-9)
    assert float((w_q - xbar.weight.detach().double()).abs().max()) <= step / 2 + 1e-12


def test_read_noise_is_unbiased_fresh_per_read_and_leaves_the_state() -> None:
    sigma = 0.2
    cells = NoisyCells(n_levels=16, program_sigma=0.0, read_noise_sigma=sigma)
    xbar = layer(64, 8, ideal_config(n_levels=16, read_noise=True), cells)
    x = torch.rand(1, 64, generator=torch.Generator().manual_seed(0)).expand(4000, 64)
    g_before = xbar.g.clone()
    with torch.no_grad():
        out = (xbar(x) - xbar.bias).double()
        again = xbar(x[:1])
    assert torch.equal(xbar.g, g_before)  # reads never change the programmed state
    assert not torch.allclose(out[:1], (again - xbar.bias).double())
    g = xbar.conductance_now()
    per_weight = xbar.w_max / xbar.g_span
    noiseless = x[0].double() @ ((g[0] - g[1]) * per_weight).T
    var = (x[0].double() ** 2) @ ((g[0] ** 2 + g[1] ** 2) * per_weight**2).T * math.expm1(
        sigma**2)
    std = var.sqrt()
    assert torch.all((out.mean(0) - noiseless).abs() < 4 * std / math.sqrt(4000))
    assert torch.allclose(out.std(0), std, rtol=0.08)


def test_analog_gradients_go_straight_through_to_the_shadow_weights() -> None:
    cfg = ideal_config(n_levels=8, dac_bits=5, adc_bits=5, read_noise=True, tile_rows=8,
                       tile_cols=8)
    xbar = layer(20, 6, cfg, NoisyCells(n_levels=8, read_noise_sigma=0.1))
    ref = nn.Linear(20, 6)
    ref.load_state_dict({"weight": xbar.weight.detach(), "bias": xbar.bias.detach()})
    x = torch.randn(9, 20, generator=torch.Generator().manual_seed(4))
    upstream = torch.randn(9, 6, generator=torch.Generator().manual_seed(5))
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = xbar(x1)
    (out * upstream).sum().backward()
    (ref(x2) * upstream).sum().backward()
    with torch.no_grad():
        assert not torch.allclose(out, ref(x), atol=1e-3)  # the forward pass is the hardware's
    assert xbar.weight.grad is not None and float(xbar.weight.grad.abs().sum()) > 0
    assert torch.allclose(xbar.weight.grad, ref.weight.grad, atol=1e-6)
    assert torch.allclose(xbar.bias.grad, ref.bias.grad, atol=1e-6)
    assert torch.allclose(x1.grad, x2.grad, atol=1e-6)


def test_ideal_chip_gradients_equal_the_digital_layer() -> None:
    xbar = layer(30, 12, ideal_config(tile_rows=16, tile_cols=8))
    ref = nn.Linear(30, 12)
    ref.load_state_dict({"weight": xbar.weight.detach(), "bias": xbar.bias.detach()})
    x = torch.randn(5, 30, generator=torch.Generator().manual_seed(6))
    xbar(x).tanh().square().sum().backward()
    ref(x).tanh().square().sum().backward()
    assert torch.allclose(xbar.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-7)
    assert torch.allclose(xbar.bias.grad, ref.bias.grad, rtol=1e-5, atol=1e-7)


def test_digital_mode_is_plain_linear_and_modes_are_checked() -> None:
    xbar = layer(10, 4, ideal_config(n_levels=4), IdealCells(n_levels=4))
    xbar.set_mode("digital")
    x = torch.randn(3, 10)
    assert torch.equal(xbar(x), F.linear(x, xbar.weight, xbar.bias))
    with pytest.raises(ConfigError, match="mode"):
        xbar.set_mode("photonic")


def test_running_ranges_calibrate_in_training_and_hold_in_eval() -> None:
    cfg = ideal_config(dac_bits=8, adc_bits=8, dac_range="running", adc_range="running")
    xbar = layer(16, 4, cfg)
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        xbar.train()
        xbar(x)
        assert float(xbar.dac_running) == pytest.approx(float(x.abs().max()))
        xbar.eval()
        xbar(3 * x)  # out of range in eval: clipped, the range is kept
        assert float(xbar.dac_running) == pytest.approx(float(x.abs().max()))
