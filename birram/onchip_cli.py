"""``birram chip-sweep``: accuracy of a finished run's model on chips, swept over levels,
programming noise and time since programming (``birram.onchip_sweeps``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from birram.errors import ConfigError, DataError


def find_run(run_dir: Path, method: str, seed: int | None) -> Path:
    """The directory of one finished (method, seed) of an experiment, checked; for a
    hardware-aware experiment, the network trained on chip 1."""
    from birram.methods.registry import check_methods
    from birram.run import MODEL_FILE

    if not run_dir.is_dir():
        raise ConfigError(f"RUN_DIR {run_dir} does not exist or is not a directory")
    check_methods([method])
    method_dir = run_dir / method
    if not method_dir.is_dir():
        held = sorted(p.name for p in run_dir.iterdir() if p.is_dir() and any(p.glob("seed-*")))
        raise ConfigError(f"{run_dir} holds no run of {method}; it holds: "
                          f"{', '.join(held) or 'no runs'}")
    seeds = sorted(int(p.name[5:]) for p in method_dir.glob("seed-*") if p.name[5:].isdigit())
    if seed is None:
        if not seeds:
            raise ConfigError(f"{method_dir} holds no seed-<s> directory")
        seed = seeds[0]
    seed_dir = method_dir / f"seed-{seed}"
    if not seed_dir.is_dir():
        raise ConfigError(f"{run_dir} holds no seed {seed} of {method}; seeds there: "
                          f"{', '.join(map(str, seeds)) or 'none'}")
    for candidate in (seed_dir, seed_dir / "chip-1"):
        if (candidate / MODEL_FILE).is_file():
            return candidate
    raise DataError(f"{seed_dir} holds no trained model ({MODEL_FILE}); the run has not "
                    "finished")


def percent(p: dict[str, Any]) -> str:
    se = "" if p["se"] is None else f" ± {100 * p['se']:.1f}"
    return f"{100 * p['mean']:.1f}{se}"


def sweep_table(result: dict[str, Any], title: str, x_name: str) -> Table:
    """Rows: the sweep's points; columns: its series (mean ± s.e. over chips, %)."""
    table = Table(title=title)
    table.add_column(x_name)
    for series in result["series"]:
        table.add_column(series["label"] + " %", justify="right")
    for i, first in enumerate(result["series"][0]["points"]):
        table.add_row(first["label"], *(percent(s["points"][i]) for s in result["series"]))
    return table


def register(app: typer.Typer) -> None:
    from birram.cli import console, err_console, friendly_errors

    @app.command(name="chip-sweep")
    @friendly_errors
    def chip_sweep(
        run_dir: Path = typer.Argument(..., help="Experiment directory (--out of compare/run)."),
        method: str = typer.Option("bir", "--method", "-m", help="Method whose model to use."),
        seed: int = typer.Option(None, help="Seed of the run (default: the lowest there)."),
        chip: str = typer.Option("rram-4bit", help="Chip preset the sweeps start from."),
        chips: int = typer.Option(5, help="Chip instances per point (chip seeds 1..K)."),
        variability_scale: float = typer.Option(1.0, "--variability-scale",
                                                help="Scale of the RRAM cells' spreads."),
        device: str = typer.Option(None, help="cpu or cuda (default: the run's device)."),
        threads: int = typer.Option(None, help="CPU threads (default: the run's setting)."),
        out: Path = typer.Option(None, "--out", "-o",
                                 help="Where to write (default: RUN_DIR/chip-sweeps)."),
    ) -> None:
        """Accuracy on chips against levels per device, programming noise and time since
        programming (25 and 85 °C): sweeps.json and three figures."""
        import torch

        from birram import io, onchip_sweeps
        from birram.hardware.chip import chip_preset
        from birram.rram.cli import check_range
        from birram.rundir import check_writable

        found = find_run(run_dir, method, seed)
        base = chip_preset(chip)
        check_range("--chips", chips, 1, 100)
        check_range("--variability-scale", variability_scale, 0.0, 20.0)
        if threads is not None:
            check_range("--threads", threads, 1, 1024)
        out = out or run_dir / "chip-sweeps"
        check_writable(out)
        trained, ctx = onchip_sweeps.restore_trained(found, device)
        recorded = io.read_json_strict(found / "config.json")  # sound: restore_trained read it
        seed_used = int(recorded["seed"])
        threads = threads or recorded["train"]["threads"]
        if threads is not None:  # small models on busy cores: oversubscription costs 3-4x
            torch.set_num_threads(threads)
        err_console.print(f"sweeping {found} on {chip}, {chips} chip(s) per point",
                          highlight=False)
        results = onchip_sweeps.all_sweeps(trained, ctx, base, chips, variability_scale)
        digital = results["levels"]["digital_accuracy"]
        io.write_json(out / "sweeps.json", {
            "run_dir": str(found), "method": method, "seed": seed_used, "chip": chip,
            "chips": chips, "variability_scale": variability_scale,
            "digital_accuracy": digital, "sweeps": results})
        onchip_sweeps.plot_sweeps(results, out, f"{method} (seed {seed_used}) on {chip}")
        console.print(f"{method}, seed {seed_used}: digital accuracy {100 * digital:.1f} %; on "
                      f"{chip} (mean ± s.e. over {chips} chip(s)):", highlight=False)
        console.print(sweep_table(results["levels"], "levels per device", "levels"))
        console.print(sweep_table(results["programming_noise"], "programming noise",
                                  "noise scale"))
        console.print(sweep_table(results["retention"], "time since programming "
                                  f"(just programmed: {percent(results['retention']['unaged'])}"
                                  " %)", "time"))
        console.print(f"Sweeps written to [bold]{out}[/] (sweeps.json, "
                      + ", ".join(name for name, _, _ in onchip_sweeps.FIGURES.values()) + ").")
