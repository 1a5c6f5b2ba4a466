"""What ``birram fit`` writes: the parameter set, fit.json, report.md and an overlay plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from birram import io
from birram.rram.fit import FIT_PARAMS, FitResult
from birram.rram.param_file import PARAM_NAMES, write_param_set

PARAMS_FILE = "params.json"


def fit_summary(result: FitResult, seconds: float) -> dict[str, Any]:
    """Everything fit.json holds: per-cycle and per-device values, residuals and sigmas."""
    opts = result.options
    rms = [c["residual_rms_log10"] for c in result.cycles]
    return {
        "params_file": PARAMS_FILE,
        "base": opts.base.name,
        "fitted": list(FIT_PARAMS),
        "held_fixed": {k: getattr(result.param_set.params, k) for k in PARAM_NAMES
                       if k not in FIT_PARAMS},
        "population": {k: getattr(result.param_set.params, k) for k in FIT_PARAMS},
        "sigmas": {"d2d": result.sigmas["d2d"], "c2c": result.sigmas["c2c"],
                   "c2c_rho": opts.c2c_rho},
        "devices": result.devices,
        "cycles": result.cycles,
        "skipped": result.skipped,
        "chain_fits_stopped_at_max_nfev": result.unconverged,
        "median_residual_rms_log10": float(np.median(rms)),
        "options": {"current_floor_a": opts.current_floor_a,
                    "sweep_rate_v_per_s": opts.sweep_rate_v_per_s, "rounds": opts.rounds,
                    "max_nfev": opts.max_nfev, "mask_points": opts.mask_points},
        "seconds": seconds,
    }


def write_fit_outputs(result: FitResult, out: Path, seconds: float) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    write_param_set(out / PARAMS_FILE, result.param_set)
    summary = fit_summary(result, seconds)
    io.write_json(out / "fit.json", summary)
    overlay_plot(result, out / "fit.png")
    io.write_text(out / "report.md", report_text(result, summary))
    return summary


def report_text(result: FitResult, summary: dict[str, Any]) -> str:
    p = result.param_set.params
    lines = [
        "# Fit of the gap + filament model to measured sweeps", "",
        f"{len(result.devices)} device(s), {len(result.cycles)} cycle(s) fitted"
        + (f", {len(result.skipped)} left out (did not switch)" if result.skipped else "")
        + f"; median residual {summary['median_residual_rms_log10']:.3f} decades of current "
        f"(RMS of log10 |I|); {summary['seconds']:.1f} s.", "",
        f"Parameter set: `{PARAMS_FILE}` (use it with `birram simulate --params "
        f"{PARAMS_FILE}` or `birram dataset --params {PARAMS_FILE}`).", "",
        "| parameter | population median | d2d sigma | c2c sigma |", "|---|---|---|---|"]
    for k in FIT_PARAMS:
        lines.append(f"| {k} | {getattr(p, k):.4g} | {result.sigmas['d2d'][k]:.3f} | "
                     f"{result.sigmas['c2c'][k]:.3f} |")
    lines += ["", "Sigmas are log-normal (of the natural log of the parameter). Every other "
              f"parameter is held at the `{result.options.base.name}` set's value (see "
              "`fit.json`, `held_fixed`).", "", "## Devices", "",
              "| device | " + " | ".join(FIT_PARAMS) + " |",
              "|---|" + "---|" * len(FIT_PARAMS)]
    for name, values in result.devices.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[k]:.4g}" for k in FIT_PARAMS) + " |")
    lines += ["", "![measured and fitted sweeps](fit.png)", ""]
    if result.skipped:
        lines += ["## Left out", ""] + [f"- {s}" for s in result.skipped] + [""]
    return "\n".join(lines)


def overlay_plot(result: FitResult, path: Path, max_devices: int = 3) -> None:
    """Measured (dots) and fitted (line) |I| against V: a row per device, a column per
    compliance level, the first cycle of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = list(result.devices)[:max_devices]
    levels = sorted({s.icc_a for s in result.prepared})
    fig, axes = plt.subplots(len(devices), len(levels), squeeze=False, sharex=True,
                             sharey=True, figsize=(3.2 * len(levels), 2.6 * len(devices)))
    for r, device in enumerate(devices):
        for c, icc in enumerate(levels):
            ax = axes[r][c]
            picks = [k for k, s in enumerate(result.prepared)
                     if s.device == device and s.icc_a == icc]
            if picks:
                k = min(picks, key=lambda i: result.prepared[i].cycle)
                s = result.prepared[k]
                ax.semilogy(s.volts, 10.0 ** s.log_i, ".", ms=2, color="0.5", label="measured")
                ax.semilogy(s.volts, 10.0 ** result.simulated[k], "-", lw=1, color="C3",
                            label="fitted")
            ax.set_title(f"{device}, I_CC {icc:.3g} A", fontsize=8)
            ax.tick_params(labelsize=7)
            if r == len(devices) - 1:
                ax.set_xlabel("V (V)", fontsize=8)
            if c == 0:
                ax.set_ylabel("|I| (A)", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    io.write_with(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
