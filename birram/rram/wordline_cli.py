"""``birram wordline``: simulate a word-line-voltage sweep of 1T1R cells. The fit of the access
transistor to a measured sweep (:func:`fit_wordline_command`) runs as ``birram fit --wordline
FILE`` (``fit_cli.py``)."""

from __future__ import annotations

import csv
import io as _io
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from birram import io
from birram.cli_support import friendly_errors
from birram.errors import ConfigError
from birram.rundir import check_writable

if TYPE_CHECKING:
    import numpy as np


def parse_word_line_voltages(text: str) -> np.ndarray:
    """``'0.4:3.0:0.1'`` (start:stop:step, stop included) or ``'0.5,1,1.5'``."""
    import numpy as np  # imported here: the command line starts without numpy

    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not (math.isfinite(step) and step > 0 and stop > start):
                raise ConfigError(f"--v-wl {text!r}: expected start:stop:step with stop > start "
                                  f"and step > 0")
            if (stop - start) / step > 10_000:
                raise ConfigError(f"--v-wl {text!r}: at most 10000 word-line voltages")
            return np.round(np.arange(start, stop + 0.5 * step, step), 9)
        return np.array([float(v) for v in text.split(",") if v.strip()])
    except ValueError:
        raise ConfigError(f"--v-wl expects start:stop:step or comma-separated volts, "
                          f"got {text!r}") from None


def _transistor(v_th: float, k: float, slope: float, lam: float) -> Any:
    from birram.rram.transistor import Transistor

    return Transistor(v_th_v=v_th, k_a_per_v2=k, slope_n=slope, lambda_per_v=lam).validated()


def _drive(v_bl: float, width: float, v_read: float, r_line: float) -> Any:
    from birram.rram.wordline import SetDrive

    return SetDrive(v_bl_v=v_bl, pulse_width_s=width, v_read_v=v_read,
                    r_line_ohm=r_line).validated()


def _write_table(path: Path, columns: dict[str, np.ndarray]) -> None:
    text = _io.StringIO()
    writer = csv.writer(text)
    writer.writerow(list(columns))
    for row in zip(*columns.values()):
        writer.writerow([f"{float(v):.6g}" for v in row])
    io.write_text(path, text.getvalue())


def wordline_command(v_wl: str, params: str, v_bl: float, pulse_width: float, v_read: float,
                     r_line: float, v_th: float, k: float, slope: float, lam: float,
                     out: Path, scatter: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """Simulate the sweep; write wordline.csv, wordline.png and summary.json under ``out``.

    ``scatter`` > 0 multiplies each resistance in the table by a seeded log-normal factor
    (sigma of ln R), as cell-to-cell spread does in a measured array: a test input for the fit.
    """
    import numpy as np  # imported here: the command line starts without numpy

    from birram.rram import plots
    from birram.rram.params import get_params
    from birram.rram.wordline import simulate_wordline

    voltages = parse_word_line_voltages(v_wl)
    transistor = _transistor(v_th, k, slope, lam)
    drive = _drive(v_bl, pulse_width, v_read, r_line)
    device = get_params(params)
    if not (math.isfinite(scatter) and 0.0 <= scatter <= 2.0):
        raise ConfigError(f"--scatter (sigma of ln R) must lie in [0, 2], got {scatter!r}")
    if not 0 <= seed <= 2**32 - 1:
        raise ConfigError(f"--seed must lie in [0, 2^32 - 1], got {seed}")
    check_writable(out)
    sweep = simulate_wordline(voltages, transistor, drive, device)
    spread = np.exp(np.random.default_rng(seed).normal(0.0, scatter, sweep.v_wl_v.size)) \
        if scatter > 0 else np.ones_like(sweep.v_wl_v)
    i_sat = replace(transistor, v_wl_v=sweep.v_wl_v).saturation_current_a().numpy()
    out.mkdir(parents=True, exist_ok=True)
    _write_table(out / "wordline.csv", {"v_wl_v": sweep.v_wl_v,
                                        "r_read_ohm": sweep.r_read_ohm * spread,
                                        "i_peak_a": sweep.i_peak_a,
                                        "r_simulated_ohm": sweep.r_read_ohm})
    plots.wordline_sweep(sweep.v_wl_v, sweep.r_read_ohm, sweep.i_peak_a, i_sat,
                         sweep.r_free_ohm, out / "wordline.png",
                         f"{device.name}: {v_bl:g} V, {pulse_width * 1e6:.3g} us SET pulse; V_th "
                         f"{v_th:g} V, K {k:.3g} A/V^2",
                         points=(sweep.v_wl_v, sweep.r_read_ohm * spread) if scatter > 0
                         else None, points_label=f"with {scatter:g} log-normal spread")
    summary = {"params": device.name, "v_bl_v": v_bl, "pulse_width_s": pulse_width,
               "v_read_v": v_read, "r_line_ohm": r_line,
               "transistor": {"v_th_v": v_th, "k_a_per_v2": k, "slope_n": slope,
                              "lambda_per_v": lam},
               "r_initial_ohm": sweep.r_initial_ohm, "r_free_ohm": sweep.r_free_ohm,
               "r_min_ohm": float(sweep.r_read_ohm.min()),
               "r_max_ohm": float(sweep.r_read_ohm.max()), "points": int(sweep.v_wl_v.size),
               "scatter": scatter, "seed": seed}
    io.write_json(out / "summary.json", summary)
    return summary


def fit_wordline_command(path: Path, params: str, v_bl: float, pulse_width: float,
                         v_read: float, r_line: float, v_th: float, k: float, slope: float,
                         lam: float, fit: str, out: Path | None) -> dict[str, Any]:
    """Fit the transistor to a measured V_WL-R table; optionally write fit.json, fit.csv and
    fit.png under ``out``."""
    import numpy as np  # imported here: the command line starts without numpy

    from birram.rram import plots
    from birram.rram.params import get_params
    from birram.rram.wordline import FIT_PARAMETERS, fit_wordline, simulate_wordline
    from birram.rram.wordline_table import read_wordline_table

    names = tuple(n.strip() for n in fit.split(",") if n.strip())
    aliases = {"v_th": "v_th_v", "k": "k_a_per_v2", "slope": "slope_n", "n": "slope_n",
               "lambda": "lambda_per_v"}
    names = tuple(aliases.get(n, n) for n in names)
    if not names or any(n not in FIT_PARAMETERS for n in names):
        raise ConfigError(f"--fit takes v_th, k, slope, lambda (comma-separated), got {fit!r}")
    start = _transistor(v_th, k, slope, lam)
    drive = _drive(v_bl, pulse_width, v_read, r_line)
    device = get_params(params)
    if out is not None:
        check_writable(out)
    table = read_wordline_table(path)
    result = fit_wordline(table.v_wl_v, table.r_ohm, drive, device, start, names)
    t = result.transistor
    summary = {"file": table.source, "points": int(table.v_wl_v.size), "rows": table.rows,
               "params": device.name, "v_bl_v": v_bl, "pulse_width_s": pulse_width,
               "v_read_v": v_read, "r_line_ohm": r_line, "fitted": list(result.fitted),
               "transistor": {"v_th_v": float(t.v_th_v), "k_a_per_v2": float(t.k_a_per_v2),
                              "slope_n": float(t.slope_n),
                              "lambda_per_v": float(t.lambda_per_v)},
               "rms_log10_error": result.rms_log10_error,
               "simulations": result.evaluations}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        dense = np.linspace(table.v_wl_v.min(), table.v_wl_v.max(), 60)
        curve = simulate_wordline(dense, t, drive, device)
        i_sat = replace(t, v_wl_v=curve.v_wl_v).saturation_current_a().numpy()
        _write_table(out / "fit.csv", {"v_wl_v": table.v_wl_v, "r_measured_ohm": table.r_ohm,
                                       "r_model_ohm": result.model_r_ohm})
        plots.wordline_sweep(curve.v_wl_v, curve.r_read_ohm, curve.i_peak_a, i_sat,
                             curve.r_free_ohm, out / "fit.png",
                             f"{table.source}: V_th {float(t.v_th_v):.3g} V, "
                             f"K {float(t.k_a_per_v2):.3g} A/V^2",
                             points=(table.v_wl_v, table.r_ohm), curve_label="fit")
        io.write_json(out / "fit.json", summary)
    return summary


def register(app: typer.Typer) -> None:
    """Add ``wordline`` to the main ``birram`` app."""

    @app.command("wordline")
    @friendly_errors
    def wordline(
        v_wl: str = typer.Option("0.4:3.0:0.1", help="Word-line voltages: start:stop:step or "
                                 "comma-separated (V)."),
        params: str = typer.Option("filament", help="Cell parameter set (see birram "
                                   "simulate)."),
        v_bl: float = typer.Option(1.5, help="Bit-line SET pulse amplitude (V)."),
        pulse_width: float = typer.Option(1e-6, help="SET pulse width (s)."),
        v_read: float = typer.Option(0.1, help="Read voltage (V)."),
        r_line: float = typer.Option(1000.0, help="Bit-line and contact resistance (ohm)."),
        v_th: float = typer.Option(0.6, help="Transistor threshold voltage (V)."),
        k: float = typer.Option(1e-3, help="Transistor K = mu C_ox W / L (A/V^2)."),
        slope: float = typer.Option(1.3, help="Sub-threshold slope factor n."),
        lam: float = typer.Option(0.05, "--lambda", help="Channel-length modulation (1/V)."),
        scatter: float = typer.Option(0.0, help="Log-normal spread (sigma of ln R) added to "
                                      "the resistances written to wordline.csv."),
        seed: int = typer.Option(0, help="Seed of that spread."),
        out: Path = typer.Option(Path("wordline-sim"), help="Output directory."),
    ) -> None:
        """Simulate resistance after SET against word-line voltage (1T1R cells)."""
        s = wordline_command(v_wl, params, v_bl, pulse_width, v_read, r_line, v_th, k, slope,
                             lam, out, scatter, seed)
        typer.echo(f"{s['params']}: {s['points']} word-line voltages; R after SET "
                   f"{s['r_max_ohm']:.3g} -> {s['r_min_ohm']:.3g} ohm (without transistor "
                   f"{s['r_free_ohm']:.3g} ohm); wrote {out}")
