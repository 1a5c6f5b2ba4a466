"""Put a model on a chip: every ``nn.Linear`` becomes a :class:`CrossbarLinear` of one chip.

``deploy`` works in place (pass ``copy=True`` for a deployed copy) and keeps the very Parameter
objects of the replaced layers, so an optimiser made before deploying still trains them.
Linear layers inside ``GatedLinear``, ``nn.Sequential``, ``nn.ModuleList`` and the VAE heads are
found recursively; frozen pre-trained feature extractors (:class:`FrozenExtractor`) stay
digital: they are fixed convolutional front ends, not crossbar matrices. The training loop and
the methods never learn about the chip: hardware-aware training is the same loop over a
deployed model in ``analog`` mode (noisy forward, straight-through gradient).
"""

from __future__ import annotations

import copy as copy_module
from typing import Any

from torch import nn

from birram.errors import ConfigError
from birram.hardware.cells import CellModel
from birram.hardware.chip import ChipConfig, chip_preset
from birram.hardware.crossbar import Chip, CrossbarLinear
from birram.hardware.energy import Ledger
from birram.hardware.ideal_cells import IdealCells
from birram.models.conv import FrozenExtractor


def default_cells(config: ChipConfig) -> CellModel:
    """The cell model a config names, where it can be built without calibration data."""
    if config.cells == "ideal":
        return IdealCells(n_levels=config.n_levels)
    raise ConfigError(f"chip.cells={config.cells!r} needs a calibrated cell model: pass "
                      "cells=birram.hardware.rram_cells.rram_cells(n_levels=...) to deploy")


def deploy(model: nn.Module, chip: ChipConfig | str = "rram-4bit",
           cells: CellModel | None = None, *, program: bool = True, mode: str = "analog",
           copy: bool = False) -> nn.Module:
    """Replace each ``nn.Linear`` of ``model`` by a crossbar layer of one new chip.

    ``chip`` is a :class:`ChipConfig` or a preset name; ``cells`` the cell model (built from
    the config when it names ideal cells). With ``program`` the shadow weights are written
    onto the array at once; ``mode`` is the mode every layer starts in. Layers are numbered in
    module order, and each draws its faults and programming noise from its own stream of the
    chip's seed: the same seed and model give the same chip.
    """
    config = chip_preset(chip) if isinstance(chip, str) else chip
    if crossbar_layers(model):
        raise ConfigError("model is already deployed on a chip")
    if copy:
        model = copy_module.deepcopy(model)
    shared = Chip(config, cells if cells is not None else default_cells(config), Ledger())
    counter = [0]

    def replace(parent: nn.Module, prefix: str) -> None:
        for child_name, child in parent.named_children():
            name = f"{prefix}.{child_name}" if prefix else child_name
            if isinstance(child, FrozenExtractor):
                continue
            if isinstance(child, nn.Linear):
                setattr(parent, child_name, CrossbarLinear(child, shared, name, counter[0]))
                counter[0] += 1
            else:
                replace(child, name)

    replace(model, "")
    if program:
        program_model(model)
    set_mode(model, mode)
    return model


def crossbar_layers(model: nn.Module) -> list[CrossbarLinear]:
    return [m for m in model.modules() if isinstance(m, CrossbarLinear)]


def _layers(model: nn.Module) -> list[CrossbarLinear]:
    layers = crossbar_layers(model)
    if not layers:
        raise ConfigError("model has no crossbar layers: deploy it first")
    return layers


def program_model(model: nn.Module, only_changed: bool = True) -> int:
    """Program every layer's shadow weights; returns the number of write attempts."""
    return sum(layer.program(only_changed) for layer in _layers(model))


def set_mode(model: nn.Module, mode: str) -> None:
    """``"analog"`` (through the array) or ``"digital"`` (shadow weights) for every layer."""
    for layer in _layers(model):
        layer.set_mode(mode)


def age_model(model: nn.Module, t_s: float, temp_k: float | None = None) -> None:
    """Let ``t_s`` seconds pass on the chip at ``temp_k`` (its configured temperature if None)."""
    for layer in _layers(model):
        layer.age(t_s, temp_k)


def ledger_of(model: nn.Module) -> Ledger:
    return _layers(model)[0].ledger


def chip_summary(model: nn.Module) -> dict[str, Any]:
    """Devices, tiles, faults, writes (total, max and mean per device) and energy totals."""
    layers = _layers(model)
    per_layer = [layer.summary() for layer in layers]
    devices = sum(s["devices"] for s in per_layer)
    writes = sum(s["writes_total"] for s in per_layer)
    ledger = ledger_of(model)
    # One inference reads every layer once: the sum of each layer's read cost per vector.
    per_inference = sum(t.inference_energy_j / t.vectors for t in ledger.layers.values()
                        if t.vectors)
    return {
        "config": layers[0].config.to_dict(),
        "layers": len(layers),
        "devices": devices,
        "tiles": sum(s["tiles"] for s in per_layer),
        "stuck_devices": sum(s["stuck"] for s in per_layer),
        "writes_total": writes,
        "writes_max_per_device": max(s["writes_max"] for s in per_layer),
        "writes_mean_per_device": writes / devices if devices else 0.0,
        "energy": ledger.totals(),
        "analog_energy_per_inference_j": per_inference,
        "per_layer": per_layer,
    }
