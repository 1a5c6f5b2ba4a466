"""The empirical laws of filamentary RRAM, per compliance level, for a parameter set.

Cycles a population at the compliance dataset's ten levels (10 uA - 1 mA) with its DC sweep and
prints, per level, the medians of R_LRS x I_CC (the "universal" V_c, a few tenths of a volt in
measured cells) and I_reset / I_CC (close to 1 in measured oxide cells), with the 5th-95th
percentiles of the latter, the median R_LRS, R_HRS, V_set and V_reset, and the fractions of
cycles that did not reach the compliance or did not switch.

Usage: ``python benchmarks/filament_laws.py [--params filament] [--variability 1.0]
[--devices 30] [--cycles 4] [--seed 0] [--with NAME=VALUE ...] [--out laws.json]``.
``--with`` changes fields of the set, e.g. the previous filament set:
``--with beta=0.8 --with a0_m=0.25e-9 --with f_min_v_per_m=1.4e9 --variability 2``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from birram import io
from birram.rram.cycling import SweepConfig, run_cycles
from birram.rram.dataset import RRAMDatasetConfig, level_name, single_thread
from birram.rram.integrate import IntegratorOptions
from birram.rram.params import get_params, validate_params
from birram.rram.variability import Variability


def law_table(params_name: str, changes: dict[str, float], scale: float, devices: int,
              cycles: int, seed: int) -> list[dict[str, float]]:
    cfg = RRAMDatasetConfig()
    params = validate_params(get_params(params_name).with_(**changes))
    levels = cfg.levels_a
    n = levels.size * devices
    level_of = torch.arange(n) // devices
    with single_thread() as threads:
        result = run_cycles(
            params, torch.as_tensor(levels)[level_of], n, cycles,
            variability=Variability.for_params(params, scale), seed=seed,
            sweep=SweepConfig(cfg.v_set_max, cfg.v_reset_max, cfg.sweep_rate_v_per_s,
                              cfg.sweep_step_v),
            device_ids=torch.arange(n) % devices, n_devices=devices,
            options=IntegratorOptions(threads=threads))
    f = {k: v.numpy() for k, v in result.features.items()}
    label = np.broadcast_to(level_of.numpy(), f["r_lrs_ohm"].shape)
    rows = []
    for k, icc in enumerate(levels):
        at = label == k
        ratio = f["i_reset_a"][at] / icc
        rows.append({
            "icc_a": float(icc), "r_lrs_x_icc_v": float(np.median(f["r_lrs_ohm"][at]) * icc),
            "i_reset_over_icc": float(np.median(ratio)),
            "i_reset_over_icc_p5": float(np.percentile(ratio, 5)),
            "i_reset_over_icc_p95": float(np.percentile(ratio, 95)),
            "r_lrs_ohm": float(np.median(f["r_lrs_ohm"][at])),
            "r_hrs_ohm": float(np.median(f["r_hrs_ohm"][at])),
            "v_set_v": float(np.median(f["v_set_v"][at])),
            "v_reset_v": float(np.median(f["v_reset_v"][at])),
            "not_reaching_compliance": float(np.mean(f["i_set_max_a"][at] < 0.98 * icc)),
            "not_switching": float(np.mean(f["r_hrs_ohm"][at] <= 2 * f["r_lrs_ohm"][at])),
        })
    return rows


def parse_changes(items: list[str]) -> dict[str, float]:
    changes = {}
    for item in items:
        name, _, value = item.partition("=")
        changes[name.strip()] = float(value)
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="filament")
    parser.add_argument("--variability", type=float, default=RRAMDatasetConfig().variability_scale)
    parser.add_argument("--devices", type=int, default=30)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--with", dest="changes", action="append", default=[],
                        metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    changes = parse_changes(args.changes)
    rows = law_table(args.params, changes, args.variability, args.devices, args.cycles,
                     args.seed)
    print(f"{args.params} {changes or ''} variability {args.variability}, {args.devices} devices "
          f"x {args.cycles} cycles per level")
    print("| I_CC | R_LRS x I_CC (V) | I_reset / I_CC (5-95 %) | R_LRS | R_HRS | V_set | V_reset "
          "| no compliance | no switch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {level_name(r['icc_a'])} | {r['r_lrs_x_icc_v']:.3f} | "
              f"{r['i_reset_over_icc']:.2f} ({r['i_reset_over_icc_p5']:.2f}-"
              f"{r['i_reset_over_icc_p95']:.2f}) | {r['r_lrs_ohm']:.3g} | {r['r_hrs_ohm']:.3g} | "
              f"{r['v_set_v']:.3f} | {r['v_reset_v']:.3f} | {r['not_reaching_compliance']:.3f} "
              f"| {r['not_switching']:.3f} |")
    if args.out:
        io.write_json(args.out, {"params": args.params, "changes": changes,
                                 "variability_scale": args.variability, "levels": rows})


if __name__ == "__main__":
    main()
