"""Energy of reads and writes, the shared ledger, and the digital reference."""

from __future__ import annotations

import copy

import pytest
import torch
from hw_helpers import ideal_config, layer

from birram.hardware.energy import ENERGY_CONSTANTS, Ledger, digital_inference_energy
from birram.hardware.ideal_cells import IdealCells
from birram.methods.base import frozen_copy
from birram.models.mlp import Classifier
from birram.models.vae import ReplayVAE


def two_by_two(**changes: object):
    cfg = ideal_config(weight_range=1.0, t_read_s=10e-9, **changes)
    cells = IdealCells(n_levels=None, g_min_s=1e-6, g_max_s=1e-4, v_read_v=0.2)
    xbar = layer(2, 2, cfg, cells, bias=False)
    with torch.no_grad():
        xbar.weight.copy_(torch.tensor([[1.0, -0.5], [0.25, 0.0]]))
    xbar.program()
    xbar.ledger.layers.clear()
    return xbar


def test_read_energy_of_a_hand_computed_two_by_two_array() -> None:
    xbar = two_by_two()
    # Devices (S): w=1 -> G+ 100u, G- 1u; w=-0.5 -> G+ 1u, G- 50.5u; w=0.25 -> G+ 25.75u,
    # G- 1u; w=0 -> 1u, 1u. Input [1, -0.5] with full scale 1 -> row voltages 0.2 V, -0.1 V.
    row0_g = (100 + 1 + 25.75 + 1) * 1e-6  # devices on input row 0 (weights w00 and w10)
    row1_g = (1 + 50.5 + 1 + 1) * 1e-6  # devices on input row 1 (w01 and w11)
    expected = (0.2**2 * row0_g + 0.1**2 * row1_g) * 10e-9  # sum of V^2 G t_read, J
    with torch.no_grad():
        out = xbar(torch.tensor([[1.0, -0.5]]))
    assert torch.allclose(out, torch.tensor([[1.25, 0.25]]), atol=1e-6)
    tally = xbar.ledger.tally("")
    assert tally.read_energy_j == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(5.645e-14, rel=1e-9)
    assert (tally.vectors, tally.mvms, tally.macs) == (1, 1, 4)
    assert tally.dac_energy_j == tally.adc_energy_j == 0.0  # ideal converters cost nothing


def test_converter_energy_is_counted_per_conversion() -> None:
    xbar = two_by_two(dac_bits=8, adc_bits=6)
    with torch.no_grad():
        xbar(torch.randn(5, 2))
    tally = xbar.ledger.tally("")
    assert tally.dac_conversions == 10 and tally.adc_conversions == 10
    assert tally.dac_energy_j == pytest.approx(10 * 8 * ENERGY_CONSTANTS["dac_per_bit"].value)
    assert tally.adc_energy_j == pytest.approx(
        10 * 2**6 * ENERGY_CONSTANTS["adc_walden_fom"].value)


def test_write_energy_and_counts_land_in_the_ledger() -> None:
    xbar = two_by_two()
    with torch.no_grad():
        xbar.weight[1, 1] = -0.75
    assert xbar.program() == 1
    tally = xbar.ledger.tally("")
    assert tally.writes == 1
    assert tally.write_energy_j == pytest.approx(1e-12)  # IdealCells' documented constant


def test_deep_copies_share_the_ledger_and_count_on_it() -> None:
    xbar = two_by_two()
    snapshot = frozen_copy(xbar)
    assert snapshot.ledger is xbar.ledger and copy.deepcopy(xbar.ledger) is xbar.ledger
    assert snapshot.g is not xbar.g
    with torch.no_grad():
        snapshot(torch.ones(3, 2))
    assert xbar.ledger.tally("").vectors == 3
    totals = xbar.ledger.totals()
    assert totals["inference_energy_j"] == pytest.approx(
        totals["read_energy_j"] + totals["dac_energy_j"] + totals["adc_energy_j"])
    xbar.ledger.reset_reads()
    assert xbar.ledger.tally("").vectors == 0


def test_ledger_is_a_plain_dataclass() -> None:
    ledger = Ledger()
    ledger.tally("a").writes += 3
    assert ledger.to_dict()["totals"]["writes"] == 3


def test_digital_reference_energy_from_per_operation_figures() -> None:
    model = Classifier((1, 28, 28), 10, [400, 400])
    macs = 784 * 400 + 400 * 400 + 400 * 10
    biases = 400 + 400 + 10
    params = macs + biases
    fp32 = digital_inference_energy(model, "fp32", "sram")
    assert fp32["macs"] == macs
    assert fp32["total_j"] == pytest.approx(macs * 4.6e-12 + biases * 0.9e-12 + params * 5e-12)
    int8 = digital_inference_energy(model, "int8", "dram")
    assert int8["total_j"] == pytest.approx(
        macs * 0.23e-12 + biases * 0.03e-12 + params / 4 * 640e-12)
    with pytest.raises(ValueError, match="precision"):
        digital_inference_energy(model, "fp16")  # type: ignore[arg-type]


def test_digital_reference_counts_only_the_layers_a_forward_pass_runs() -> None:
    vae = ReplayVAE(784, 784, [400, 400], 100, torch.Generator().manual_seed(0), n_classes=10)
    x = torch.rand(2, 784)
    used = digital_inference_energy(vae, example_input=x)
    assert used["macs"] == 784 * 400 + 400 * 400 + 400 * 10
    assert digital_inference_energy(vae)["macs"] > used["macs"]
