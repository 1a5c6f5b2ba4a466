"""Energy and endurance bookkeeping of a chip, and the digital reference it is compared with.

Every constant lives in :data:`ENERGY_CONSTANTS` with its unit and source, so documentation can
list them. Published figures are marked with their source; the two converter figures are
assumptions (stated as such), chosen inside the range the cited surveys report.

- Analog read (per tile MVM): ``sum over devices of V_in^2 * G * t_read``, V_in the DAC voltage
  of the device's row (proportional to the input, at most the read voltage).
- DAC: ``bits * dac_energy_per_bit`` per converted input; ADC: ``Walden FoM * 2^bits`` per
  converted tile output (Walden figure of merit, as tabulated in Murmann's ADC survey).
- Writes: whatever the cell model reports for each programming pulse train.
- Digital reference: Horowitz (ISSCC 2014, 45 nm, 0.9 V) per-operation energies, weights read
  from an 8 KB SRAM or from DRAM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn


@dataclass(frozen=True)
class EnergyConstant:
    value: float
    unit: str
    source: str


_HOROWITZ = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
             "ISSCC 2014, 45 nm at 0.9 V")

ENERGY_CONSTANTS: dict[str, EnergyConstant] = {
    "fp32_mult": EnergyConstant(3.7e-12, "J", _HOROWITZ),
    "fp32_add": EnergyConstant(0.9e-12, "J", _HOROWITZ),
    "int8_mult": EnergyConstant(0.2e-12, "J", _HOROWITZ),
    "int8_add": EnergyConstant(0.03e-12, "J", _HOROWITZ),
    "sram_read_32bit": EnergyConstant(
        5e-12, "J", _HOROWITZ + ": 10 pJ per 64-bit read of an 8 KB SRAM, halved for 32 bits"),
    "dram_read_32bit": EnergyConstant(
        640e-12, "J", "Han et al., 'Learning both weights and connections for efficient neural "
        "networks', NeurIPS 2015 (Table 1, from Horowitz's 1.3-2.6 nJ per 64-bit DRAM access)"),
    "adc_walden_fom": EnergyConstant(
        10e-15, "J per conversion step", "assumption: a mid-range SAR ADC; B. Murmann, 'ADC "
        "Performance Survey 1997-2024' (github.com/bmurmann/ADC-survey) lists the best Walden "
        "FoMs at a few fJ/step and below (conversion energy = FoM * 2^bits)"),
    "dac_per_bit": EnergyConstant(
        5e-15, "J per bit per conversion", "assumption: one ~5 fF capacitor switched at ~1 V "
        "per bit (C V^2)"),
}


def constant(name: str) -> float:
    return ENERGY_CONSTANTS[name].value


def adc_energy_j(bits: int | None) -> float:
    """Energy of one ADC conversion; 0 for an ideal (``None``) converter."""
    return 0.0 if bits is None else constant("adc_walden_fom") * 2.0**bits


def dac_energy_j(bits: int | None) -> float:
    """Energy of one DAC conversion; 0 for an ideal (``None``) converter."""
    return 0.0 if bits is None else constant("dac_per_bit") * bits


@dataclass
class LayerTally:
    """What one crossbar layer has cost so far."""

    vectors: int = 0  # input vectors read through the layer
    mvms: int = 0  # tile matrix-vector multiplications (vectors x tiles)
    macs: int = 0  # multiply-accumulates done in the analog domain (vectors x in x out)
    dac_conversions: int = 0
    adc_conversions: int = 0
    read_energy_j: float = 0.0
    dac_energy_j: float = 0.0
    adc_energy_j: float = 0.0
    programs: int = 0  # calls of program()
    writes: int = 0  # programming attempts over all devices
    write_energy_j: float = 0.0

    @property
    def inference_energy_j(self) -> float:
        return self.read_energy_j + self.dac_energy_j + self.adc_energy_j


@dataclass
class Ledger:
    """The energy and write ledger of one chip, shared by all its layers.

    Deep copies of a deployed model share it (``__deepcopy__`` returns ``self``): a frozen copy
    kept for replay runs on the same chip, so its reads are counted on the same bill.
    """

    layers: dict[str, LayerTally] = field(default_factory=dict)

    def __deepcopy__(self, memo: dict[int, Any]) -> Ledger:
        return self

    def tally(self, layer: str) -> LayerTally:
        if layer not in self.layers:
            self.layers[layer] = LayerTally()
        return self.layers[layer]

    def totals(self) -> dict[str, float]:
        names = [f.name for f in dataclasses.fields(LayerTally)]
        total = {name: sum(getattr(t, name) for t in self.layers.values()) for name in names}
        total["inference_energy_j"] = sum(t.inference_energy_j for t in self.layers.values())
        return total

    def reset_reads(self) -> None:
        """Forget read costs (e.g. after calibration), keep the write history."""
        for name, t in self.layers.items():
            self.layers[name] = LayerTally(programs=t.programs, writes=t.writes,
                                           write_energy_j=t.write_energy_j)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": {k: dataclasses.asdict(v) for k, v in self.layers.items()},
                "totals": self.totals()}


Precision = Literal["fp32", "int8"]
WeightStore = Literal["sram", "dram"]


def linear_layers_used(model: nn.Module, example_input: torch.Tensor | None = None
                       ) -> list[nn.Linear]:
    """The linear layers one forward pass of ``example_input`` runs (each time it runs one);
    every linear layer of the model when no input is given."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if example_input is None:
        return layers
    used: list[nn.Linear] = []
    handles = [m.register_forward_hook(lambda m, i, o: used.append(m)) for m in layers]
    try:
        with torch.no_grad():
            model(example_input[:1])
    finally:
        for h in handles:
            h.remove()
    return used


def digital_inference_energy(model: nn.Module, precision: Precision = "fp32",
                             weights_in: WeightStore = "sram",
                             example_input: torch.Tensor | None = None) -> dict[str, float]:
    """Energy of one inference (one input vector) of the model's linear layers on a CMOS
    processor: one multiply and one add per MAC, one add per bias, and each weight and bias read
    once from SRAM or DRAM (four int8 values per 32-bit word). Activations are taken to stay in
    registers, so this is a lower bound for a real digital processor.

    With ``example_input`` only the layers its forward pass runs are counted (a VAE's
    classifier path, not its decoder); without, every linear layer.
    """
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision={precision!r}; allowed: fp32, int8")
    if weights_in not in ("sram", "dram"):
        raise ValueError(f"weights_in={weights_in!r}; allowed: sram, dram")
    layers: Iterable[nn.Linear] = linear_layers_used(model, example_input)
    macs = params = biases = 0
    for layer in layers:
        macs += layer.in_features * layer.out_features
        biases += layer.out_features if layer.bias is not None else 0
        params += layer.weight.numel() + (layer.out_features if layer.bias is not None else 0)
    mult, add = constant(f"{precision}_mult"), constant(f"{precision}_add")
    words = params if precision == "fp32" else params / 4.0
    compute = macs * (mult + add) + biases * add
    memory = words * constant(f"{weights_in}_read_32bit")
    return {"macs": float(macs), "parameters": float(params), "compute_j": compute,
            "memory_j": memory, "total_j": compute + memory}
