"""A tiny layer programmed with the simulator-calibrated RRAM cells."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from birram.hardware import chip_preset, chip_summary, crossbar_layers, deploy, ledger_of
from birram.hardware.rram_cells import rram_cells


def test_tiny_layer_on_rram_cells(tmp_path: Path) -> None:
    cells = rram_cells(n_levels=4, devices_per_level=50, pilot_devices=20, placement_passes=1,
                       cache_dir=tmp_path)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8))
    reference = nn.Linear(16, 8)
    reference.load_state_dict(model[0].state_dict())
    deploy(model, chip_preset("rram-4bit", n_levels=4, stuck_hrs_fraction=0.0,
                              stuck_lrs_fraction=0.0), cells)
    layer = crossbar_layers(model)[0]
    written = layer.writes.bool()
    # write-verify may take several attempts per device, each at the device's level
    expected_energy = float((cells.write_energy(layer.cell_level[written])
                             * layer.writes[written]).sum())
    assert ledger_of(model).totals()["write_energy_j"] == expected_energy > 0
    assert layer.program() == 0
    x = torch.rand(64, 16)
    with torch.no_grad():
        analog, digital = model(x), reference(x)
    assert torch.corrcoef(torch.stack([analog.flatten(), digital.flatten()]))[0, 1] > 0.8
    layer.age(3600.0, temp_k=358.0)
    with torch.no_grad():
        model(x)
    assert chip_summary(model)["energy"]["read_energy_j"] > 0
