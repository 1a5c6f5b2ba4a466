"""The crossbar side of birram: chips as data, crossbar layers, deployment and energy.

``deploy(model, "rram-4bit", cells)`` puts a model's linear layers on a chip; see
:mod:`birram.hardware.deploy` for the helpers that program, age and summarise it, and
:mod:`birram.hardware.energy` for the ledger and the constants behind every energy figure.
The names below are imported on first use (PEP 562): the chip presets need no torch.
"""

from __future__ import annotations

from birram.lazy import lazy_exports

_EXPORTS = {
    "birram.hardware.cells": ("CellModel", "LevelTable"),
    "birram.hardware.chip": ("CHIP_PRESETS", "ChipConfig", "chip_preset"),
    "birram.hardware.crossbar": ("CrossbarLinear",),
    "birram.hardware.deploy": ("age_model", "chip_summary", "crossbar_layers", "deploy",
                               "ledger_of", "program_model", "set_mode"),
    "birram.hardware.energy": ("ENERGY_CONSTANTS", "Ledger", "digital_inference_energy"),
    "birram.hardware.ideal_cells": ("IdealCells",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
