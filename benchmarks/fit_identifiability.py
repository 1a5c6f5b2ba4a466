"""Which parameters of the gap + filament model DC sweeps can tell apart (the choice behind
``birram.rram.fit.FIT_PARAMS``).

    python benchmarks/fit_identifiability.py

For each parameter of the ``filament`` set: how much its change moves V_set and V_reset, and
how strongly it changes log10 |I| away from the switching events (the norm of d log10 I /
d ln p over three compliance levels, with the points within three steps of a switch left
out), and the correlation of that sensitivity with the others'. A parameter that moves
nothing, or whose sensitivity is (anti)parallel to another's, cannot be fitted apart.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from birram.rram.drive import Compliance, triangular_sweep
from birram.rram.integrate import initial_state, simulate
from birram.rram.params import FILAMENT
from birram.rram.physics import TensorParams

CANDIDATES = ("i0_a", "v0_v", "rho_ohm_m", "dissolution", "f_min_v_per_m", "vel0_m_per_s",
              "ea_reset_ev", "g0_m", "gap_max_m", "l0_m", "width_min_m",
              "width_vel0_m_per_s", "ei_ev", "rth_k_per_w")
LEVELS = np.array([1e-5, 1e-4, 1e-3])


def sweep_log_current(per: dict[str, np.ndarray], m: int) -> tuple[np.ndarray, np.ndarray]:
    wave = triangular_sweep(step_v=0.01)
    p = TensorParams(FILAMENT, {k: torch.from_numpy(v) for k, v in per.items()})
    icc = torch.from_numpy(np.tile(LEVELS, m))
    state = initial_state(p, m * LEVELS.size)
    _, state = simulate(p, wave, Compliance(icc), state)
    trace, _ = simulate(p, wave, Compliance(icc), state)
    log_i = np.log10(np.maximum(np.abs(trace.current_a.double().numpy().T), 1e-10))
    return wave.volts.numpy(), log_i.reshape(m, LEVELS.size, -1)


def switching_voltages(v: np.ndarray, log_i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    log_g = log_i - np.log10(np.maximum(np.abs(v), 1e-9))
    rising = (v[1:] > v[:-1]) & (v[:-1] > 0)
    v_set = v[np.argmax(np.where(rising, log_g[..., 1:] - log_g[..., :-1], -np.inf), -1)]
    v_reset = v[np.argmax(np.where(v < 0, log_i, -np.inf), -1)]
    return v_set, v_reset


def main() -> int:
    torch.set_num_threads(1)
    factors = np.exp([-0.3, 0.0, 0.3])
    h = 0.02
    n = len(CANDIDATES)
    # rows: nominal, then each parameter at exp(+-0.3) and exp(+h)
    per = {k: np.full((1 + 3 * n) * LEVELS.size, getattr(FILAMENT, k)) for k in CANDIDATES}
    for j, k in enumerate(CANDIDATES):
        for a, f in enumerate((factors[0], factors[2], np.exp(h))):
            row = 1 + 3 * j + a
            per[k][row * LEVELS.size:(row + 1) * LEVELS.size] *= f
    v, log_i = sweep_log_current(per, 1 + 3 * n)
    v_set, v_reset = switching_voltages(v, log_i)
    base = log_i[0]
    keep = np.ones_like(base, dtype=bool)
    for lvl in range(LEVELS.size):
        for b in np.flatnonzero(np.abs(np.diff(base[lvl])) > 0.3):
            keep[lvl, max(0, b - 3):b + 4] = False
    sens = np.stack([((log_i[1 + 3 * j + 2] - base) / h * keep).ravel() for j in range(n)])
    norms = np.linalg.norm(sens, axis=1)
    print("parameter            V_set at x0.74 / x1 / x1.35 (V, 100 uA)  V_reset (V, 100 uA)"
          "      |d log10 I / d ln p|")
    for j, k in enumerate(CANDIDATES):
        rows = [1 + 3 * j, 0, 1 + 3 * j + 1]
        vs = " / ".join(f"{v_set[r, 1]:.2f}" for r in rows)
        vr = " / ".join(f"{v_reset[r, 1]:.2f}" for r in rows)
        print(f"{k:20s} {vs:>30s}   {vr:>24s}   {norms[j]:10.2f}")
    unit = sens / np.maximum(norms[:, None], 1e-12)
    corr = unit @ unit.T
    print("\ncorrelation of the sensitivities (|r| > 0.9 marked)")
    for j, k in enumerate(CANDIDATES):
        close = [f"{CANDIDATES[b]} {corr[j, b]:+.2f}" for b in range(n)
                 if b != j and abs(corr[j, b]) > 0.9]
        print(f"{k:20s} {', '.join(close) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
