"""RRAM device simulator: gap and gap + filament-width models, sweeps with compliance, variability,
features, and the compliance-current dataset.

Quick start::

    import torch
    from birram.rram import FILAMENT, run_cycles
    result = run_cycles(FILAMENT, torch.tensor([1e-5, 1e-4, 1e-3]), n=3, cycles=2)
    result.features["r_lrs_ohm"]  # [cycles, devices]

The names below are imported on first use (PEP 562), so that importing one submodule, such as
the command line's, does not pull in torch and the compiled kernel.
"""

from __future__ import annotations

from birram.lazy import lazy_exports

_EXPORTS = {
    "birram.rram.cycling": ("CycleResult", "SweepConfig", "run_cycles"),
    "birram.rram.drive": ("Compliance", "Waveform", "pulse", "sweep_half", "triangular_sweep"),
    "birram.rram.features": ("CycleFeatures", "cycle_features", "trace_vector"),
    "birram.rram.integrate": ("DeviceState", "IntegratorOptions", "Trace", "initial_state",
                              "simulate"),
    "birram.rram.params": ("ALOX", "FILAMENT", "HFO2", "PARAM_SETS", "STANFORD_ASU",
                           "STANFORD_V1", "DeviceParams", "get_params", "validate_params"),
    "birram.rram.physics": ("TensorParams", "read_resistance"),
    "birram.rram.variability": ("Variability",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
