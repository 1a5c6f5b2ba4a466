"""``birram sweep``: a grid of configurations, every cell a Ray task (locally or on a cluster)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from birram.cli_support import console, err_console, friendly_errors

TRACK_HELP = "Also log every run to tensorboard or mlflow (pip install birram[track])."


def base_settings(sets: list[str], iters: int | None, track: str | None) -> dict[str, object]:
    """Flat settings from ``--set``, ``--iters`` and ``--track`` (checked against the model)."""
    from birram.cli import parse_assignments
    from birram.config import check_setting
    from birram.rundir import flat

    settings = flat(parse_assignments(sets))
    for key in settings:
        check_setting(key, "--set")
    if iters is not None:
        settings["train.iters"] = iters
    if track is not None:
        settings["track.backend"] = track
    return settings


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly_errors
    def sweep(
        grid: list[str] = typer.Option([], "--grid", help="A swept setting and its values, "
                                       "e.g. method.kl_weight=0.25,0.5,1 (repeatable: every "
                                       "combination)."),
        config: Path = typer.Option(None, "--config", "-c", help="A sweep file (TOML): preset, "
                                    "methods, seeds, [set], [grid] or [[configs]]."),
        preset: str = typer.Option(None, "--preset", "-p", help="Preset under every point."),
        methods: str = typer.Option(None, help="Comma-separated methods, e.g. none,bir."),
        seeds: str = typer.Option(None, help="Comma-separated seeds, e.g. 1,2."),
        iters: int = typer.Option(None, min=1, help="Iterations per task."),
        set_: list[str] = typer.Option([], "--set", help="A setting of every point, e.g. "
                                       "train.lr=0.002 (repeatable)."),
        track: str = typer.Option(None, "--track", help=TRACK_HELP),
        out: Path = typer.Option(None, "--out", "-o", help="Sweep directory (default: "
                                 "runs/sweep-NAME-...)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the sweep in --out: "
                                    "finished cells are read back, not re-run."),
        address: str = typer.Option(None, "--address", help="A Ray cluster to run on (e.g. "
                                    "auto, or ray://HEAD:10001); default: a local instance."),
        workers: int = typer.Option(None, min=1, help="CPUs of the local Ray instance "
                                    "(default: all cores); one cell per CPU."),
    ) -> None:
        """Run a grid of configurations (methods x seeds x settings) as parallel Ray tasks.

        Each point is an ordinary experiment directory and each cell an ordinary run directory;
        the sweep's table is sweep_results.md/.csv/.json, with a figure per swept setting."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from birram.cli import parse_list, resume_command
        from birram.errors import ConfigError
        from birram.sweep import SweepSpec, expand, load_sweep_file, make_axis, parse_grid_option
        from birram.sweep_run import run_sweep

        spec = load_sweep_file(config) if config is not None else SweepSpec()
        spec.preset = preset or spec.preset
        spec.methods = parse_list(methods, str, "--methods") or spec.methods
        spec.seeds = parse_list(seeds, int, "--seeds") or spec.seeds
        spec.settings.update(base_settings(set_, iters, track))
        axes = {a.setting: a for a in spec.axes}
        for text in grid:  # a --grid option replaces the file's axis of the same setting
            axis = parse_grid_option(text)
            axes[axis.setting] = make_axis(axis.setting, list(axis.values), "--grid")
        spec.axes = list(axes.values())
        if spec.axes and spec.configs:
            raise ConfigError("--grid cannot extend a sweep file's [[configs]] list; give "
                              "one or the other")
        points = expand(spec)
        if out is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            out = Path("runs") / f"sweep-{points[0].config.name}-{stamp}"
        n_cells = sum(len(p.config.methods) * len(p.config.seeds) for p in points)
        console.print(f"{len(points)} point(s) x methods x seeds = {n_cells} cells -> {out}",
                      highlight=False)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        try:
            with Progress(*columns, console=err_console) as progress:
                bar = progress.add_task("cells", total=n_cells)
                result = run_sweep(points, out, resume=resume, address=address,
                                   workers=workers,
                                   on_cell=lambda cell, status: progress.advance(bar))
        except KeyboardInterrupt:
            err_console.print(f"interrupted: finished cells are kept in {out}. Continue with: "
                              f"{resume_command(out)}", highlight=False, markup=False)
            raise typer.Exit(130) from None
        console.print((out / "sweep_results.md").read_text(encoding="utf-8"), markup=False,
                      highlight=False)
        console.print(f"{n_cells} cells: {result.ran} ran, {result.reused} read back from "
                      f"finished runs, {len(result.failures)} failed. Results in {out} "
                      "(sweep_results.md/.csv/.json, sweep_*.png).", highlight=False)
        if result.failures:
            for cell, message in result.failures.items():
                err_console.print(f"failed: {cell.point} {cell.method} seed {cell.seed}: "
                                  f"{message}", highlight=False, markup=False)
            raise typer.Exit(3)
