"""RRAM device simulator: gap and gap + filament-width models, sweeps with compliance, variability,
features, and the compliance-current dataset.

Quick start::

    import torch
    from birram.rram import FILAMENT, run_cycles
    result = run_cycles(FILAMENT, torch.tensor([1e-5, 1e-4, 1e-3]), n=3, cycles=2)
    result.features["r_lrs_ohm"]  # [cycles, devices]
"""

from birram.rram.cycling import CycleResult, SweepConfig, run_cycles
from birram.rram.drive import Compliance, Waveform, pulse, sweep_half, triangular_sweep
from birram.rram.features import CycleFeatures, cycle_features, trace_vector
from birram.rram.integrate import DeviceState, IntegratorOptions, Trace, initial_state, simulate
from birram.rram.params import (
                                ALOX,
                                FILAMENT,
                                HFO2,
                                PARAM_SETS,
                                STANFORD_ASU,
                                STANFORD_V1,
                                DeviceParams,
                                get_params,
                                validate_params,
)
from birram.rram.physics import TensorParams, read_resistance
from birram.rram.variability import Variability

__all__ = [
    "ALOX", "FILAMENT", "HFO2", "PARAM_SETS", "STANFORD_ASU", "STANFORD_V1", "Compliance",
    "CycleFeatures", "CycleResult", "DeviceParams", "DeviceState", "IntegratorOptions",
    "SweepConfig", "TensorParams", "Trace", "Variability", "Waveform", "cycle_features",
    "get_params", "initial_state", "pulse", "read_resistance", "run_cycles", "simulate",
    "sweep_half", "trace_vector", "triangular_sweep", "validate_params",
]
