"""Round trip of ``birram fit``: simulate devices with known parameters, write them as an
instrument would (EasyEXPERT CSV with noise, floor, resolution and compliance clipping), read
them back, fit, and compare the parameters and the variability sigmas with the truth.

    python benchmarks/fit_round_trip.py --devices 24 --cycles 3 --out /tmp/fit-round-trip.json

Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from birram import io
from birram.rram.example_data import simulate_campaign, write_campaign
from birram.rram.fit import FIT_PARAMS, FitOptions, fit_sweeps
from birram.rram.measured import read_sweep_files


def round_trip(devices: int, cycles: int, levels: list[float], seed: int,
               options: FitOptions) -> dict:
    campaign = simulate_campaign(devices, levels, cycles, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_campaign(campaign, tmp)
        sweeps = read_sweep_files(sorted(paths))
    start = time.perf_counter()
    result = fit_sweeps(sweeps, options)
    seconds = time.perf_counter() - start
    names = campaign.device_names
    rows = {}
    for p in FIT_PARAMS:
        truth = np.array([campaign.true_log[p][d].mean() for d in range(devices)])
        fitted = np.log([result.devices[name][p] for name in names])
        rel = np.abs(np.exp(fitted - truth) - 1)
        true_d2d = dict(campaign.variability.d2d).get(p, 0.0)
        true_c2c = dict(campaign.variability.c2c).get(p, 0.0)
        # the spread these devices happen to have (a finite sample of the nominal sigma)
        realised = float(np.std(campaign.device_log[p], ddof=1)) if devices > 1 else 0.0
        slope = (float(np.polyfit(truth, fitted, 1)[0]) if truth.std() > 0 else float("nan"))
        rows[p] = {"median_rel_error": float(np.median(rel)), "max_rel_error": float(rel.max()),
                   "d2d_true": true_d2d, "d2d_realised": realised,
                   "d2d_fit": result.sigmas["d2d"][p], "c2c_true": true_c2c,
                   "c2c_fit": result.sigmas["c2c"][p], "slope_fit_vs_true": slope}
    rms = [c["residual_rms_log10"] for c in result.cycles]
    return {"devices": devices, "cycles": cycles, "levels_a": levels, "seed": seed,
            "sweeps": len(sweeps), "fit_seconds": seconds, "rounds": options.rounds,
            "max_nfev": options.max_nfev, "threads": torch.get_num_threads(),
            "median_residual_rms_log10": float(np.median(rms)),
            "chain_fits_stopped_at_max_nfev": result.unconverged, "params": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=24)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--levels", default="1e-5,1e-4,1e-3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=FitOptions.rounds)
    ap.add_argument("--max-nfev", type=int, default=FitOptions.max_nfev)
    ap.add_argument("--no-match-reset", action="store_true",
                    help="leave i0_a to least squares alone (no V_reset scan)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    options = FitOptions(rounds=args.rounds, max_nfev=args.max_nfev,
                         match_reset=not args.no_match_reset)
    report = round_trip(args.devices, args.cycles, [float(x) for x in args.levels.split(",")],
                        args.seed, options)
    print(f"{report['sweeps']} sweeps ({args.devices} devices x {len(report['levels_a'])} levels "
          f"x {args.cycles} cycles), fit in {report['fit_seconds']:.1f} s, median residual "
          f"{report['median_residual_rms_log10']:.3f} decades; "
          f"{report['chain_fits_stopped_at_max_nfev']} chain fits stopped at max_nfev")
    print(f"{'parameter':16s} {'median err':>10s} {'max err':>8s} {'d2d true':>8s} "
          f"{'(sample)':>8s} {'d2d fit':>8s} {'c2c true':>8s} {'c2c fit':>8s} {'slope':>6s}")
    for p, r in report["params"].items():
        print(f"{p:16s} {100 * r['median_rel_error']:9.2f}% {100 * r['max_rel_error']:7.2f}% "
              f"{r['d2d_true']:8.3f} {r['d2d_realised']:8.3f} {r['d2d_fit']:8.3f} "
              f"{r['c2c_true']:8.3f} {r['c2c_fit']:8.3f} {r['slope_fit_vs_true']:6.2f}")
    if args.out:
        io.write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
