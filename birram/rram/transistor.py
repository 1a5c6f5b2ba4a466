"""The access transistor of a 1T1R cell: its gate (word-line) voltage sets the SET current.

An EKV-style long-channel MOSFET with the source grounded and the cell on the drain, so one
expression covers sub-threshold, linear and saturation with smooth transitions:

    I_D = I_spec [F(V_P / U_T) - F((V_P - V_DS) / U_T)] (1 + lambda V_DS)
    F(x) = ln^2(1 + exp(x / 2)),   V_P = (V_WL - V_th) / n,   I_spec = 2 n K U_T^2

Above threshold this is the square law: ``I_D -> K / (2 n) (V_WL - V_th)^2 (1 + lambda V_DS)``
in saturation and ``K (V_WL - V_th) V_DS`` at small V_DS; below threshold the current falls by
a decade per ``n U_T ln 10`` of gate voltage. Both integrator backends take the per-device
constants from :func:`derived_constants`, so they evaluate the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from birram.errors import ConfigError

THERMAL_VOLTAGE_300K_V = 0.025852  # kB T / q at 300 K
# Columns of the per-device constant matrix (both backends index it the same way).
TRANSISTOR_COLUMNS = ("pinch_off_v", "i_spec_a", "f_forward", "lambda_per_v", "thermal_v")
TRANSISTOR_ITERS = 40  # bisection on the drain voltage: resolves V_DS to ~V * 1e-12


@dataclass(frozen=True)
class Transistor:
    """Access-transistor parameters; each may be one value or one per device (a tensor)."""

    v_wl_v: float | Tensor = 1.2  # gate (word-line) voltage during SET
    v_th_v: float | Tensor = 0.5  # threshold voltage
    k_a_per_v2: float | Tensor = 2e-4  # transconductance parameter K = mu C_ox W / L
    slope_n: float | Tensor = 1.3  # sub-threshold slope factor
    lambda_per_v: float | Tensor = 0.05  # channel-length modulation
    thermal_voltage_v: float = THERMAL_VOLTAGE_300K_V

    def validated(self) -> Transistor:
        for f in fields(self):
            value = torch.as_tensor(getattr(self, f.name), dtype=torch.float64)
            bad = ~torch.isfinite(value)
            if f.name in ("k_a_per_v2", "slope_n", "thermal_voltage_v"):
                bad = bad | (value <= 0)
            elif f.name == "lambda_per_v":
                bad = bad | (value < 0)
            if bool(bad.any()):
                rule = "finite" if f.name in ("v_wl_v", "v_th_v") else (
                    ">= 0" if f.name == "lambda_per_v" else "> 0")
                raise ConfigError(f"transistor {f.name} must be {rule}, got "
                                  f"{value[bad].flatten()[0].item()!r}")
        return self

    def saturation_current_a(self, v_ds: float = 0.0) -> Tensor:
        """Current with the drain far above pinch-off (at ``v_ds`` for the CLM factor)."""
        n = max(torch.as_tensor(getattr(self, f.name)).numel() for f in fields(self))
        c = derived_constants(self, n)
        return c[:, 1] * c[:, 2] * (1 + c[:, 3] * v_ds)


def softplus(x: Tensor) -> Tensor:
    """ln(1 + e^x) without overflow (the kernel writes the same formula)."""
    return x.clamp_min(0.0) + torch.log1p(torch.exp(-x.abs()))


def derived_constants(t: Transistor, n: int) -> Tensor:
    """[n, 5] float64 constants per device: pinch-off voltage, I_spec, F(V_P / U_T), lambda,
    U_T (the order of TRANSISTOR_COLUMNS)."""
    def col(value: float | Tensor) -> Tensor:
        return torch.broadcast_to(torch.as_tensor(value, dtype=torch.float64), (n,))

    ut = col(t.thermal_voltage_v)
    slope = col(t.slope_n)
    vp = (col(t.v_wl_v) - col(t.v_th_v)) / slope
    i_spec = 2.0 * slope * col(t.k_a_per_v2) * ut * ut
    f_forward = softplus(vp / (2.0 * ut)) ** 2
    return torch.stack([vp, i_spec, f_forward, col(t.lambda_per_v), ut], 1).contiguous()


def drain_current(c: Tensor, v_ds: Tensor) -> Tensor:
    """Drain current for drain voltages ``v_ds`` >= 0 (one per row of the constants ``c``)."""
    vp, i_spec, f_forward, lam, ut = c.unbind(1)
    f_reverse = softplus((vp - v_ds) / (2.0 * ut)) ** 2
    return i_spec * (f_forward - f_reverse) * (1.0 + lam * v_ds)


def on_resistance_ohm(t: Transistor) -> float:
    """Small-signal drain resistance at V_DS = 0 (one device): what the cell sees in series
    once the transistor no longer limits the current."""
    c = derived_constants(t, 1)
    vp, i_spec, _, _, ut = (float(x) for x in c[0])
    x = vp / (2.0 * ut)
    sp = max(x, 0.0) + math.log1p(math.exp(-abs(x)))
    sigmoid = 1.0 / (1.0 + math.exp(-x))
    return ut / (i_spec * sp * sigmoid)
