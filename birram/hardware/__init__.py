"""The crossbar side of birram: chips as data, crossbar layers, deployment and energy.

``deploy(model, "rram-4bit", cells)`` puts a model's linear layers on a chip; see
:mod:`birram.hardware.deploy` for the helpers that program, age and summarise it, and
:mod:`birram.hardware.energy` for the ledger and the constants behind every energy figure.
"""

from birram.hardware.cells import CellModel, LevelTable
from birram.hardware.chip import CHIP_PRESETS, ChipConfig, chip_preset
from birram.hardware.crossbar import CrossbarLinear
from birram.hardware.deploy import (
    age_model,
    chip_summary,
    crossbar_layers,
    deploy,
    ledger_of,
    program_model,
    set_mode,
)
from birram.hardware.energy import ENERGY_CONSTANTS, Ledger, digital_inference_energy
from birram.hardware.ideal_cells import IdealCells

__all__ = [
    "CHIP_PRESETS",
    "ENERGY_CONSTANTS",
    "CellModel",
    "ChipConfig",
    "CrossbarLinear",
    "IdealCells",
    "Ledger",
    "LevelTable",
    "age_model",
    "chip_preset",
    "chip_summary",
    "crossbar_layers",
    "deploy",
    "digital_inference_energy",
    "ledger_of",
    "program_model",
    "set_mode",
]
