"""Device parameter sets: frozen dataclasses whose field names carry their units.

One parameter class covers both device models. The gap-only Stanford-PKU v1 model is the
special case with no filament resistance (``rho_ohm_m = 0``) and no radial growth
(``width_vel0_m_per_s = 0``, width fixed at ``width_ref_m``); the gap + filament-width model
switches both on so that the low-resistance state follows the compliance current.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from birram.errors import ConfigError


@dataclass(frozen=True)
class DeviceParams:
    """Physical parameters of one RRAM cell (SI units unless the name says otherwise)."""

    name: str = "custom"
    # Conduction through the gap: I = i0 * (w/w_ref)^2 * exp(-g/g0) * sinh(Vg/v0)
    i0_a: float = 1e-3
    g0_m: float = 0.25e-9
    v0_v: float = 0.25
    # Gap motion: thermally activated, field driven, with a field threshold
    vel0_m_per_s: float = 10.0
    gamma0: float = 16.0
    beta: float = 0.8
    ea_ev: float = 0.6  # activation energy of gap shrinking (SET direction)
    ea_reset_ev: float = 0.6  # activation energy of gap growth (RESET direction)
    a0_m: float = 0.25e-9
    tox_m: float = 12e-9
    f_min_v_per_m: float = 1.4e9
    gap_min_m: float = 0.2e-9
    gap_max_m: float = 1.7e-9
    # Heat: static thermal resistance, or first-order dynamics when tau_th_s > 0
    t_ambient_k: float = 298.0
    rth_k_per_w: float = 2.1e3
    tau_th_s: float = 0.0
    # Stochastic gap motion, as a Wiener increment (gated by temperature)
    gap_noise_m_per_sqrt_s: float = 0.0
    t_crit_k: float = 450.0
    t_smooth_k: float = 500.0
    # External series resistance (not heated with the cell)
    r_series_ohm: float = 0.0
    # Filament (zero rho and zero width velocity: gap-only model)
    rho_ohm_m: float = 0.0
    l0_m: float = 3e-9
    width_ref_m: float = 5e-9
    width_min_m: float = 5e-9
    width_max_m: float = 5e-9
    width_vel0_m_per_s: float = 0.0
    ei_ev: float = 0.5
    width_a_m: float = 0.25e-9
    width_len_m: float = 1e-9
    dissolution: float = 0.0  # lateral dissolution while the gap opens (d ln(w-w_min)/d(g/L0))

    @property
    def has_filament(self) -> bool:
        return self.rho_ohm_m > 0.0 or self.width_vel0_m_per_s > 0.0

    def set_threshold_v(self) -> float:
        """Smallest gap voltage that moves the gap when it is fully open (field threshold)."""
        gamma = self.gamma0 - self.beta * (self.gap_max_m / 1e-9) ** 3
        return math.inf if gamma <= 0 else self.f_min_v_per_m * self.tox_m / gamma

    def with_(self, **changes: Any) -> DeviceParams:
        return replace(self, **changes)


# Published defaults of the Stanford-PKU v1 model (Guan, Yu, Wong 2012; Jiang, Wong 2014).
STANFORD_V1 = DeviceParams(name="stanford-v1")

# Stanford & ASU variant: two-exponential rate, dynamic temperature with Cth = 0.318 fJ/K and
# tau = 0.23 ns (Rth = tau / Cth), L = 5 nm in place of tox, g1 = 1 nm. No field threshold
# is published for it: the high activation energies make motion negligible at low bias.
STANFORD_ASU = DeviceParams(
    name="stanford-asu", i0_a=61.4e-6, g0_m=0.275e-9, v0_v=0.43, vel0_m_per_s=150.0,
    gamma0=16.5, beta=1.25, ea_ev=1.501, ea_reset_ev=1.5, a0_m=0.25e-9, tox_m=5e-9,
    f_min_v_per_m=0.0, gap_min_m=0.1e-9, gap_max_m=1.7e-9, rth_k_per_w=0.23e-9 / 0.318e-15,
    tau_th_s=0.23e-9)

# N-doped AlOx fit: a low-current, nitride-like device for uA-scale compliance.
ALOX = DeviceParams(
    name="alox", i0_a=3e-6, g0_m=0.175e-9, v0_v=0.4, vel0_m_per_s=18.0, gamma0=14.5,
    beta=2.35, a0_m=0.4e-9, tox_m=15e-9, f_min_v_per_m=0.0, gap_min_m=0.0, gap_max_m=1.7e-9)

# HfO2-like cell seen through a series resistance (V_dev = V - I * R_series).
HFO2 = DeviceParams(name="hfo2", r_series_ohm=500.0, i0_a=1e-3, g0_m=0.25e-9, tox_m=10e-9)

# Gap + filament width (in the spirit of Stanford-PKU v2): the gap closes abruptly at the field
# threshold (0.67 V from the open gap), then the filament grows radially until the compliance
# stops it, so R_LRS ~ V_C / I_CC. Calibrated here for 10 uA - 1 mA; the gap tunnelling current
# scales with the filament area and the contact and the filament share the voltage so that RESET
# can start at a closed gap. The field enhancement falls steeply as the gap opens (beta), so the
# threshold at a closed gap is 2.6 times lower than at the open gap: RESET starts near V_C
# (about -0.35 V) at a current close to I_CC, as in measured oxide cells; the hopping distance
# a0 keeps the gap velocity at either threshold what the published set has at its SET threshold
# (f_min * a0 unchanged), so SET stays abrupt. On the dataset's sweep, variability scale 1,
# medians per level: R_LRS * I_CC = 0.28-0.38 V, I_reset / I_CC = 0.97-1.31.
FILAMENT = DeviceParams(
    name="filament", i0_a=8e-5, g0_m=0.25e-9, v0_v=0.4, vel0_m_per_s=10.0, gamma0=16.0,
    beta=5.7, ea_ev=0.6, ea_reset_ev=0.6, a0_m=0.55e-9, tox_m=7.3e-9, f_min_v_per_m=5.6e8,
    gap_min_m=0.0, gap_max_m=1.2e-9, rth_k_per_w=1e5, gap_noise_m_per_sqrt_s=0.0,
    rho_ohm_m=1e-5, l0_m=3e-9, width_ref_m=5e-9, width_min_m=0.5e-9, width_max_m=60e-9,
    width_vel0_m_per_s=30.0, ei_ev=0.5, width_a_m=0.25e-9, width_len_m=1e-9, dissolution=3.0)

PARAM_SETS: dict[str, DeviceParams] = {
    p.name: p for p in (STANFORD_V1, STANFORD_ASU, ALOX, HFO2, FILAMENT)
}

# Fields that must be strictly positive, and fields that must be >= 0.
_POSITIVE = ("i0_a", "g0_m", "v0_v", "a0_m", "tox_m", "t_ambient_k", "t_smooth_k", "l0_m",
             "width_ref_m", "width_len_m", "width_a_m")
_NON_NEGATIVE = ("vel0_m_per_s", "f_min_v_per_m", "gap_min_m", "rth_k_per_w", "tau_th_s",
                 "gap_noise_m_per_sqrt_s", "r_series_ohm", "rho_ohm_m", "width_min_m",
                 "width_vel0_m_per_s", "dissolution", "ea_ev", "ea_reset_ev", "ei_ev")


def get_params(name: str) -> DeviceParams:
    if name not in PARAM_SETS:
        raise ConfigError(f"unknown RRAM parameter set {name!r}; allowed: {', '.join(PARAM_SETS)}")
    return PARAM_SETS[name]


def validate_params(p: DeviceParams) -> DeviceParams:
    """Raise ConfigError naming the first bad value; return ``p`` unchanged when it is sound."""
    for f in fields(p):
        value = getattr(p, f.name)
        if f.name != "name" and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ConfigError(f"RRAM parameter {p.name}.{f.name} must be a finite number, "
                              f"got {value!r}")
    for key in _POSITIVE:
        if getattr(p, key) <= 0:
            raise ConfigError(f"RRAM parameter {p.name}.{key} must be > 0, got {getattr(p, key)}")
    for key in _NON_NEGATIVE:
        if getattr(p, key) < 0:
            raise ConfigError(f"RRAM parameter {p.name}.{key} must be >= 0, got {getattr(p, key)}")
    if p.gap_min_m >= p.gap_max_m:
        raise ConfigError(f"RRAM parameter {p.name}: gap_min_m ({p.gap_min_m}) must be below "
                          f"gap_max_m ({p.gap_max_m})")
    if p.width_min_m > p.width_max_m:
        raise ConfigError(f"RRAM parameter {p.name}: width_min_m ({p.width_min_m}) must not "
                          f"exceed width_max_m ({p.width_max_m})")
    if p.width_min_m <= 0 and p.has_filament:
        raise ConfigError(f"RRAM parameter {p.name}.width_min_m must be > 0 for a filament "
                          f"model, got {p.width_min_m}")
    if p.gap_max_m >= p.l0_m and p.rho_ohm_m > 0:
        raise ConfigError(f"RRAM parameter {p.name}: gap_max_m ({p.gap_max_m}) must be below "
                          f"l0_m ({p.l0_m}), the filament length")
    return p
