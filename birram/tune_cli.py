"""``birram tune``: hyperparameter search with Optuna, reported on held-out seeds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from birram.cli_support import console, err_console, friendly_errors
from birram.sweep_cli import TRACK_HELP, base_settings


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly_errors
    def tune(
        param: list[str] = typer.Option([], "--param", help="A searched setting: "
                                        "SECTION.FIELD=log:LOW:HIGH, float:LOW:HIGH, "
                                        "int:LOW:HIGH or choice:A,B (repeatable)."),
        method: str = typer.Option(..., "--method", "-m", help="The method to tune."),
        search_seeds: str = typer.Option("1,2", help="Seeds the search trains on."),
        eval_seeds: str = typer.Option("3,4,5", help="Held-out seeds: the best setting and the "
                                       "configured one are re-run on them (disjoint from "
                                       "--search-seeds)."),
        trials: int = typer.Option(20, min=1, max=10_000, help="Trials in all (a resumed "
                                   "search runs only those still missing)."),
        preset: str = typer.Option(None, "--preset", "-p", help="Preset under every trial."),
        iters: int = typer.Option(None, min=1, help="Iterations per task."),
        set_: list[str] = typer.Option([], "--set", help="A fixed setting, e.g. "
                                       "train.lr=0.002 (repeatable)."),
        sampler_seed: int = typer.Option(0, "--sampler-seed", min=0, help="Seed of the TPE "
                                         "sampler."),
        track: str = typer.Option(None, "--track", help=TRACK_HELP),
        out: Path = typer.Option(None, "--out", "-o", help="Tune directory (default: "
                                 "runs/tune-METHOD-...)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the search in --out."),
    ) -> None:
        """Search settings of one method with Optuna (TPE, pruning after each task), then
        report the best and the configured setting on held-out seeds."""
        from birram.cli import parse_list, resume_command
        from birram.tune import TuneSpec, parse_param, run_tune

        spec = TuneSpec(preset=preset, settings=base_settings(set_, iters, track),
                        method=method, params=[parse_param(p) for p in param],
                        search_seeds=parse_list(search_seeds, int, "--search-seeds") or [],
                        eval_seeds=parse_list(eval_seeds, int, "--eval-seeds") or [],
                        trials=trials, sampler_seed=sampler_seed)
        out = out or Path("runs") / f"tune-{method}-{datetime.now():%Y%m%d-%H%M%S}"

        def report(trial: object) -> None:
            number, state = getattr(trial, "number", "?"), getattr(trial, "state", None)
            values = ", ".join(f"{k.split('.')[-1]}={v:.4g}" if isinstance(v, float) else
                               f"{k.split('.')[-1]}={v}"
                               for k, v in getattr(trial, "params", {}).items())
            value = getattr(trial, "value", None)
            outcome = f"{100 * value:.1f} %" if value is not None else \
                str(state).split(".")[-1].lower()
            err_console.print(f"trial {number}: {values} -> {outcome}", highlight=False)

        try:
            run_tune(spec, out, resume=resume, on_trial=report)
        except KeyboardInterrupt:
            err_console.print(f"interrupted: the search is kept in {out}. Continue with: "
                              f"{resume_command(out)}", highlight=False, markup=False)
            raise typer.Exit(130) from None
        console.print((out / "tune_results.md").read_text(encoding="utf-8"), markup=False,
                      highlight=False)
        console.print(f"Results in {out} (tune_results.md/.json, tune_*.png).",
                      highlight=False)
