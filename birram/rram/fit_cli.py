"""``birram fit`` (measured sweeps -> parameter set) and ``birram fit-example``.

With ``--wordline FILE`` it fits the access transistor of 1T1R cells to a table of word-line
voltage and resistance after SET instead (``birram.rram.wordline_cli.fit_wordline_command``).

The command is three steps that other fitting modes reuse: :func:`collect_sweep_files` and
:func:`read_measured` (inputs), a fitter (:func:`birram.rram.fit.fit_sweeps` for the cell
under an ideal source-measure-unit compliance), and
:func:`birram.rram.fit_report.write_fit_outputs` (params.json, fit.json, report.md, fit.png).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import typer

from birram.cli_support import friendly_errors
from birram.errors import ConfigError, DataError
from birram.rundir import check_writable

SWEEP_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".xlsx")


def collect_sweep_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, and the sweep files (by suffix) anywhere under the directories named."""
    if not paths:
        raise ConfigError("give at least one measured-sweep file or directory (or --wordline "
                          "FILE for a word-line sweep)")
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in SWEEP_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise DataError(f"{path}: no sweep files ({', '.join(SWEEP_SUFFIXES)}) in this "
                                f"directory; point at the instrument's exported files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or directory")
    return files


def read_measured(files: Sequence[Path], format: str = "auto") -> list:
    from birram.rram.measured import read_sweep_files

    if format not in ("auto", "table", "easyexpert", "keithley"):
        raise ConfigError(f"--format must be auto, table, easyexpert or keithley, got "
                          f"{format!r}")
    sweeps = read_sweep_files(files, format)  # type: ignore[arg-type]
    if not sweeps:
        raise DataError(f"no sweeps in {len(files)} file(s)")
    return sweeps


def fit_command(paths: Sequence[Path], out: Path, *, base: str = "filament",
                sweep_rate: float = 1e4, current_floor: float = 1e-10, rounds: int = 3,
                format: str = "auto") -> dict:
    from birram.rram.fit import FitOptions, fit_sweeps
    from birram.rram.fit_report import write_fit_outputs
    from birram.rram.params import get_params

    options = FitOptions(base=get_params(base), sweep_rate_v_per_s=sweep_rate,
                         current_floor_a=current_floor, rounds=rounds).validated()
    check_writable(out)
    sweeps = read_measured(collect_sweep_files(paths), format)
    start = time.perf_counter()
    result = fit_sweeps(sweeps, options)
    return write_fit_outputs(result, out, time.perf_counter() - start)


def example_command(out: Path, devices: int, cycles: int, icc: str, seed: int) -> list[Path]:
    from birram.rram.cli import check_range, parse_currents
    from birram.rram.example_data import simulate_campaign, write_campaign

    check_range("--devices", devices, 1, 1000)
    check_range("--cycles", cycles, 1, 100)
    check_range("--seed", seed, 0, 2**32 - 1)
    levels = parse_currents(icc)
    check_writable(out)
    return write_campaign(simulate_campaign(devices, levels, cycles, seed=seed), out)


def register(app: typer.Typer) -> None:
    """Add ``fit`` and ``fit-example`` to the main ``birram`` app."""

    @app.command("fit")
    @friendly_errors
    def fit(
        paths: list[Path] = typer.Argument(None, help="Measured-sweep files or directories "
                                           "(CSV/TSV tables, Keysight EasyEXPERT CSV, Keithley "
                                           "Clarius .xlsx or text)."),
        out: Path = typer.Option(Path("rram-fit"), help="Output directory."),
        base: str = typer.Option("filament", help="Parameter set to start from; parameters "
                                 "not fitted keep its values."),
        sweep_rate: float = typer.Option(1e4, help="Sweep rate (V/s) of files without a time "
                                         "column."),
        current_floor: float = typer.Option(1e-10, help="Instrument current floor (A): smaller "
                                            "|I| counts as noise."),
        rounds: int = typer.Option(3, help="Fitting rounds (threshold scan + least squares)."),
        format: str = typer.Option("auto", help="auto, table, easyexpert or keithley."),
        wordline: Path = typer.Option(None, help="Fit the access transistor of 1T1R cells "
                                      "instead: a table of word-line voltage and resistance "
                                      "after SET (header e.g. 'V_WL (V), R (ohm)')."),
        v_bl: float = typer.Option(1.5, help="--wordline: bit-line SET pulse amplitude (V)."),
        pulse_width: float = typer.Option(1e-6, help="--wordline: SET pulse width (s)."),
        v_read: float = typer.Option(0.1, help="--wordline: read voltage (V)."),
        r_line: float = typer.Option(1000.0, help="--wordline: bit-line and contact "
                                     "resistance (ohm)."),
        v_th: float = typer.Option(0.6, help="--wordline: threshold voltage (V), start value "
                                   "or fixed."),
        k: float = typer.Option(1e-3, help="--wordline: K = mu C_ox W / L (A/V^2), start "
                                "value or fixed."),
        fit_transistor: str = typer.Option("v_th,k", help="--wordline: parameters to fit "
                                           "(v_th, k, slope, lambda)."),
    ) -> None:
        """Fit the device model to measured I-V sweeps; write params.json and a report."""
        if wordline is not None:
            from birram.rram.transistor import Transistor
            from birram.rram.wordline_cli import fit_wordline_command

            if paths:
                raise ConfigError("give either I-V sweep files or --wordline FILE, not both")
            t = Transistor()
            s = fit_wordline_command(wordline, base, v_bl, pulse_width, v_read, r_line, v_th,
                                     k, float(t.slope_n), float(t.lambda_per_v),
                                     fit_transistor, out)
            fitted = s["transistor"]
            typer.echo(f"{s['file']}: {s['points']} word-line voltages; V_th "
                       f"{fitted['v_th_v']:.4g} V, K {fitted['k_a_per_v2']:.4g} A/V^2, n "
                       f"{fitted['slope_n']:.3g}, lambda {fitted['lambda_per_v']:.3g} 1/V; rms "
                       f"error {s['rms_log10_error']:.3g} decades; wrote {out}/fit.json, "
                       f"fit.csv, fit.png")
            return
        summary = fit_command(paths, out, base=base, sweep_rate=sweep_rate,
                              current_floor=current_floor, rounds=rounds, format=format)
        typer.echo(f"fitted {len(summary['devices'])} device(s), {len(summary['cycles'])} "
                   f"cycle(s) in {summary['seconds']:.1f} s; median residual "
                   f"{summary['median_residual_rms_log10']:.3f} decades; wrote {out}/params.json, "
                   f"fit.json, report.md, fit.png")

    @app.command("fit-example")
    @friendly_errors
    def fit_example(
        out: Path = typer.Option(Path("examples/measured"), help="Output directory."),
        devices: int = typer.Option(4, help="Devices."),
        cycles: int = typer.Option(2, help="Recorded cycles per device and compliance level."),
        icc: str = typer.Option("10e-6,100e-6,1e-3", help="Compliance currents in A, "
                                "comma-separated."),
        seed: int = typer.Option(0, help="Random seed."),
    ) -> None:
        """Write simulated sweeps as EasyEXPERT CSV files, with instrument noise."""
        paths = example_command(out, devices, cycles, icc, seed)
        typer.echo(f"wrote {len(paths)} file(s) to {out}")
