"""``birram fit`` (measured sweeps -> parameter set) and ``birram fit-example``.

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

SWEEP_SUFFIXES = (".csv", ".tsv", ".txt", ".dat")


def collect_sweep_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, and the sweep files (by suffix) anywhere under the directories named."""
    if not paths:
        raise ConfigError("give at least one measured-sweep file or directory")
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

    if format not in ("auto", "table", "easyexpert"):
        raise ConfigError(f"--format must be auto, table or easyexpert, got {format!r}")
    sweeps = read_sweep_files(files, format)  # type: ignore[arg-type]
    if not sweeps:
        raise DataError(f"no sweeps in {len(files)} file(s)")
    return sweeps


def fit_command(paths: Sequence[Path], out: Path, *, base: str = "filament",
                sweep_rate: float = 1e4, current_floor: float = 1e-10, rounds: int = 2,
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
        paths: list[Path] = typer.Argument(..., help="Measured-sweep files or directories "
                                           "(CSV/TSV tables, Keysight EasyEXPERT CSV)."),
        out: Path = typer.Option(Path("rram-fit"), help="Output directory."),
        base: str = typer.Option("filament", help="Parameter set to start from; parameters "
                                 "not fitted keep its values."),
        sweep_rate: float = typer.Option(1e4, help="Sweep rate (V/s) of files without a time "
                                         "column."),
        current_floor: float = typer.Option(1e-10, help="Instrument current floor (A): smaller "
                                            "|I| counts as noise."),
        rounds: int = typer.Option(2, help="Fitting rounds (threshold scan + least squares)."),
        format: str = typer.Option("auto", help="auto, table or easyexpert."),
    ) -> None:
        """Fit the device model to measured I-V sweeps; write params.json and a report."""
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
