"""Cycle a population of devices with DC sweeps: variability, reads, features, traces."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from birram.errors import ConfigError
from birram.rram import physics
from birram.rram.drive import Compliance, ComplianceMode, sweep_half
from birram.rram.features import cycle_features, trace_vector
from birram.rram.integrate import IntegratorOptions, initial_state, simulate
from birram.rram.params import DeviceParams, validate_params
from birram.rram.variability import Variability, ar1_step, device_params, draw_normals, read_noise


@dataclass(frozen=True)
class SweepConfig:
    v_set_max: float = 1.5
    v_reset_max: float = 1.6
    rate_v_per_s: float = 1e4
    step_v: float = 5e-3
    v_read: float = 0.1

    def check(self, params: DeviceParams) -> SweepConfig:
        """Refuse a sweep that cannot switch the nominal device at all."""
        for name in ("v_set_max", "v_reset_max", "rate_v_per_s", "step_v", "v_read"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"sweep {name} must be a positive number, got {value!r}")
        threshold = params.set_threshold_v()
        if self.v_set_max < threshold:
            raise ConfigError(f"sweep v_set_max = {self.v_set_max} V is below the SET field "
                              f"threshold of {params.name} ({threshold:.3g} V): nothing would "
                              f"switch; raise v_set_max")
        if self.v_read >= min(self.v_set_max, self.v_reset_max):
            raise ConfigError(f"read voltage {self.v_read} V must be below the sweep amplitude")
        return self


# Sweep amplitudes that switch each named set (the AlOx fit needs a few volts to SET).
SWEEP_DEFAULTS: dict[str, SweepConfig] = {
    "alox": SweepConfig(v_set_max=5.0, v_reset_max=2.0),
    "stanford-asu": SweepConfig(v_set_max=3.0, v_reset_max=3.0),
}


def default_sweep(params: DeviceParams) -> SweepConfig:
    return SWEEP_DEFAULTS.get(params.name, SweepConfig())


@dataclass(frozen=True)
class CycleResult:
    """Features ``[cycles, n]``, optional traces ``[cycles, n, points]`` and raw I-V curves."""

    features: dict[str, Tensor]
    traces: Tensor | None
    iv_volts: Tensor  # [steps] applied voltage of one full cycle
    iv_current: Tensor | None  # [cycles, steps, k] for the devices chosen by keep_iv
    substeps: int
    device_steps: int  # voltage points x devices simulated
    seconds: float


def run_cycles(params: DeviceParams, icc_a: Tensor | float, n: int, cycles: int, *,
               variability: Variability | None = None, seed: int = 0,
               sweep: SweepConfig | None = None, compliance_mode: ComplianceMode = "ideal",
               warmup_cycles: int = 1, trace_points: int = 0, keep_iv: Tensor | int = 0,
               device_ids: Tensor | None = None, n_devices: int | None = None,
               trace_span: Literal["cycle", "reset"] = "cycle",
               options: IntegratorOptions | None = None) -> CycleResult:
    """Cycle ``n`` device instances ``cycles`` times (after ``warmup_cycles`` unrecorded ones).

    ``device_ids`` (values in ``[0, n_devices)``) lets several instances share one physical
    device's device-to-device draw, e.g. the same device cycled at several compliance levels.
    """
    validate_params(params)
    sweep = (sweep or default_sweep(params)).check(params)
    var = (variability or Variability.for_params(params)).validated(params)
    if cycles < 1 or warmup_cycles < 0:
        raise ConfigError(f"cycles must be >= 1 and warmup_cycles >= 0, got {cycles}, "
                          f"{warmup_cycles}")
    compliance = Compliance(torch.broadcast_to(torch.as_tensor(icc_a, dtype=torch.float64),
                                               (n,)), compliance_mode).validated()
    gen = torch.Generator().manual_seed(seed)
    keep_index = (torch.arange(min(keep_iv, n)) if isinstance(keep_iv, int)
                  else torch.as_tensor(keep_iv, dtype=torch.long))
    if device_ids is None:
        device_ids, n_devices = torch.arange(n), n
    n_devices = n_devices if n_devices is not None else int(device_ids.max()) + 1
    z_d2d = {k: v[device_ids] for k, v in draw_normals(var.d2d, n_devices, gen).items()}
    z_c2c = draw_normals(var.c2c, n, gen)
    set_wave = sweep_half(sweep.v_set_max, sweep.rate_v_per_s, sweep.step_v)
    reset_wave = sweep_half(-sweep.v_reset_max, sweep.rate_v_per_s, sweep.step_v)
    opts = options or IntegratorOptions()
    state = initial_state(device_params(params, var, z_d2d), n, opts.dtype)
    record: dict[str, list[Tensor]] = {}
    traces, iv = [], []
    substeps = 0
    start = time.perf_counter()
    for cycle in range(warmup_cycles + cycles):
        p = device_params(params, var, z_d2d, z_c2c)
        set_tr, state = simulate(p, set_wave, compliance, state, gen, opts)
        r_lrs = sweep.v_read / read_noise(
            physics.read_current(p, state.gap_m, state.width_m, sweep.v_read),
            var.read_noise_sigma, gen)
        reset_tr, state = simulate(p, reset_wave, compliance, state, gen, opts)
        r_hrs = sweep.v_read / read_noise(
            physics.read_current(p, state.gap_m, state.width_m, sweep.v_read),
            var.read_noise_sigma, gen)
        substeps += set_tr.substeps + reset_tr.substeps
        z_c2c = ar1_step(z_c2c, var.c2c_rho, gen)
        if cycle < warmup_cycles:
            continue
        assert set_tr.current_a is not None and reset_tr.current_a is not None
        feats = cycle_features(set_wave.volts, set_tr.current_a.double(), reset_wave.volts,
                               reset_tr.current_a.double(), r_lrs, r_hrs)
        for key, value in feats.as_dict().items():
            record.setdefault(key, []).append(value)
        both = torch.cat([set_tr.current_a, reset_tr.current_a])
        if trace_points:
            span = both if trace_span == "cycle" else reset_tr.current_a
            traces.append(trace_vector(span, trace_points))
        if keep_index.numel():
            iv.append(both[:, keep_index].clone())
    seconds = time.perf_counter() - start
    features = {k: torch.stack(v) for k, v in record.items()}
    switched = features["r_hrs_ohm"] > 2 * features["r_lrs_ohm"]
    if not bool(switched.any()):
        warnings.warn(f"no device switched with {params.name} at v_set_max = {sweep.v_set_max} V "
                      f"and v_reset_max = {sweep.v_reset_max} V", stacklevel=2)
    steps = (set_wave.steps + reset_wave.steps) * (warmup_cycles + cycles) * n
    return CycleResult(features, torch.stack(traces) if traces else None,
                       torch.cat([set_wave.volts, reset_wave.volts]),
                       torch.stack(iv) if iv else None, substeps, steps, seconds)
