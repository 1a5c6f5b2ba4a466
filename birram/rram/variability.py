"""Device-to-device and cycle-to-cycle variability, and read noise, from explicit generators.

Both kinds multiply chosen parameters by a log-normal factor ``exp(sigma * z)`` (median 1).
Device-to-device factors are drawn once per device; cycle-to-cycle factors follow an AR(1)
process over cycles, ``z_c = rho z_(c-1) + sqrt(1 - rho^2) eps``, because measured resistances
stay correlated over tens of cycles rather than being redrawn independently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from birram.errors import ConfigError
from birram.rram.params import DeviceParams
from birram.rram.physics import TensorParams

Sigmas = tuple[tuple[str, float], ...]

# Log-normal sigmas at scale 1 for the gap + filament model (see RRAM_PHYSICS.md, section 7).
FILAMENT_D2D: Sigmas = (("l0_m", 0.08), ("ea_ev", 0.02), ("rho_ohm_m", 0.10),
                        ("width_vel0_m_per_s", 0.15), ("vel0_m_per_s", 0.15), ("ei_ev", 0.02),
                        ("rth_k_per_w", 0.10), ("i0_a", 0.15), ("width_min_m", 0.15))
# The residual filament left by RESET, and so the current right after the gap closes, varies
# from cycle to cycle as well: dissolution and contact current get their own spread.
FILAMENT_C2C: Sigmas = (("ea_ev", 0.01), ("vel0_m_per_s", 0.15),
                        ("width_vel0_m_per_s", 0.15), ("ei_ev", 0.01), ("dissolution", 0.15),
                        ("i0_a", 0.10))
# Gap-only models: spread the current scale, the gap rate and the activation energy.
GAP_D2D: Sigmas = (("i0_a", 0.2), ("vel0_m_per_s", 0.15), ("ea_ev", 0.02), ("gamma0", 0.02))
GAP_C2C: Sigmas = (("vel0_m_per_s", 0.15), ("ea_ev", 0.01))


@dataclass(frozen=True)
class Variability:
    d2d: Sigmas = FILAMENT_D2D
    c2c: Sigmas = FILAMENT_C2C
    c2c_rho: float = 0.7  # AR(1) correlation of the cycle-to-cycle factors
    read_noise_sigma: float = 0.02  # log-normal spread of each read current
    scale: float = 1.0  # multiplies every d2d and c2c sigma

    def validated(self, params: DeviceParams) -> Variability:
        names = {f.name for f in fields(params)} - {"name"}
        for kind, sigmas in (("d2d", self.d2d), ("c2c", self.c2c)):
            for key, sigma in sigmas:
                if key not in names:
                    raise ConfigError(f"variability {kind}: unknown device parameter {key!r}")
                if not (math.isfinite(sigma) and sigma >= 0):
                    raise ConfigError(f"variability {kind} sigma for {key} must be >= 0, "
                                      f"got {sigma}")
        for name, value, lo, hi in (("c2c_rho", self.c2c_rho, 0.0, 1.0),
                                    ("read_noise_sigma", self.read_noise_sigma, 0.0, 5.0),
                                    ("scale", self.scale, 0.0, 20.0)):
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ConfigError(f"variability {name} must lie in [{lo}, {hi}], got {value}")
        return self

    @staticmethod
    def none() -> Variability:
        return Variability(d2d=(), c2c=(), read_noise_sigma=0.0)

    @staticmethod
    def for_params(params: DeviceParams, scale: float = 1.0) -> Variability:
        if params.has_filament:
            return Variability(scale=scale)
        return Variability(d2d=GAP_D2D, c2c=GAP_C2C, scale=scale)


def draw_normals(sigmas: Sigmas, n: int, generator: torch.Generator) -> dict[str, Tensor]:
    """One standard normal per device and parameter, in a fixed (sorted) order."""
    return {key: torch.randn(n, dtype=torch.float64, generator=generator)
            for key, _ in sorted(sigmas)}


def ar1_step(z: dict[str, Tensor], rho: float, generator: torch.Generator) -> dict[str, Tensor]:
    """Next cycle of the AR(1) process; stationary variance stays 1."""
    keep = math.sqrt(max(0.0, 1.0 - rho * rho))
    return {key: rho * value + keep * torch.randn(value.shape, dtype=value.dtype,
                                                  generator=generator)
            for key, value in sorted(z.items())}


def device_params(base: DeviceParams, var: Variability, z_d2d: dict[str, Tensor],
                  z_c2c: dict[str, Tensor] | None = None) -> TensorParams:
    """Per-device parameter tensors: base value times both log-normal factors."""
    log_factor: dict[str, Tensor] = {}
    for sigmas, z in ((var.d2d, z_d2d), (var.c2c, z_c2c or {})):
        for key, sigma in sigmas:
            if key in z and sigma > 0:
                term = var.scale * sigma * z[key]
                log_factor[key] = log_factor[key] + term if key in log_factor else term
    per_device = {key: getattr(base, key) * torch.exp(value) for key, value in log_factor.items()}
    if "gap_max_m" in per_device:  # the gap window must stay open and inside the filament
        per_device["gap_max_m"] = per_device["gap_max_m"].clamp(base.gap_min_m * 1.01 + 1e-12,
                                                                0.99 * base.l0_m)
    return TensorParams(base, per_device)


def read_noise(current: Tensor, sigma: float, generator: torch.Generator | None) -> Tensor:
    if sigma <= 0:
        return current
    return current * torch.exp(sigma * torch.randn(current.shape, dtype=current.dtype,
                                                   generator=generator))
