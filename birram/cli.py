"""The ``birram`` command line: thin wrappers around the library API."""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from birram.cli_options import (  # noqa: F401  (the option constants are shared with other commands)
    BatchOpt,
    ChipModeOpt,
    ChipOpt,
    ChipsOpt,
    DataDirOpt,
    DeviceOpt,
    DownloadOpt,
    ExportOpt,
    ExtractorOpt,
    HiddenOpt,
    IterOpt,
    LrOpt,
    MeasuredOpt,
    OrderOpt,
    OutOpt,
    PresetOpt,
    ProtocolOpt,
    ResumeOpt,
    ScenarioOpt,
    SetOpt,
    SharedOptions,
    TargetOpt,
    TasksOpt,
    ThreadsOpt,
    ViewOpt,
    parse_list,
    shared_options,
)
from birram.cli_support import OneLineErrors, console, err_console, friendly_errors
from birram.errors import ConfigError
from birram.rundir import check_out_dir

if TYPE_CHECKING:
    from rich.progress import Progress

    from birram.config import RunConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, cls=OneLineErrors,
                  help="Continual learning with brain-inspired replay, and an RRAM simulator.")


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``--set method.si_c=0.1`` style overrides into a nested dict (values parsed as JSON)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects SECTION.FIELD=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def overrides(**options: Any) -> dict[str, Any]:
    """Nested config dict from the options the user actually gave (None = not given)."""
    placement = {
        "protocol": ("data", "protocol"), "n_tasks": ("data", "n_tasks"),
        "class_order": ("data", "class_order"), "data_dir": ("data", "data_dir"),
        "download": ("data", "download"), "view": ("data", "view"),
        "measured": ("data", "measured"), "target": ("target",),
        "extractor": ("data", "extractor"), "iters": ("train", "iters"),
        "batch_size": ("train", "batch_size"), "lr": ("train", "lr"),
        "hidden": ("train", "hidden"), "device": ("train", "device"),
        "threads": ("train", "threads"), "workers": ("train", "workers"),
        "batch_seeds": ("train", "batch_seeds"), "compile": ("train", "compile"),
        "precision": ("train", "precision"),
        "scenario": ("scenario",), "methods": ("methods",), "seeds": ("seeds",),
        "name": ("name",), "export": ("export",),
        "export_formats": ("export_formats",),
        "chip": ("hardware", "chip"), "chip_mode": ("hardware", "mode"),
        "chips": ("hardware", "chips"),
    }
    out: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        path = placement[key]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = str(value) if isinstance(value, Path) else value
    return out


def default_out(cfg: RunConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.name}-{cfg.data.protocol}-{cfg.scenario}-{stamp}"


def resume_command(out: Path, argv: list[str] | None = None) -> str:
    """The command line that continues this run: the same arguments, --out given, --resume."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("--out", "-o") or a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["birram", *args])


class Stopped(Exception):
    """SIGTERM, turned into an exception so the run unwinds like after Ctrl-C."""


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise Stopped()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def progress_bars(progress: Progress) -> Callable[[str, int], Callable[[int, int, int], None]]:
    def factory(label: str, total: int) -> Callable[[int, int, int], None]:
        bar = progress.add_task(label, total=total)

        def tick(task: int, iteration: int, per_task: int) -> None:
            progress.update(bar, completed=task * per_task + iteration)

        return tick

    return factory


def execute(cfg: RunConfig, out: Path | None, resume: bool) -> Path:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from birram import report
    from birram.run import run_experiment

    out = out or default_out(cfg)
    check_out_dir(out, cfg.model_dump(mode="json"), resume)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with stop_on_sigterm(), Progress(*columns, console=err_console,
                                         transient=False) as progress:
            result = run_experiment(cfg, out, resume=True, progress=progress_bars(progress))
    except (KeyboardInterrupt, Stopped) as err:
        how = "interrupted" if isinstance(err, KeyboardInterrupt) else "terminated"
        if not out.exists():
            err_console.print(f"{how} before anything was written", highlight=False)
        else:
            err_console.print(f"{how}: the run stopped; completed tasks are kept in {out}. "
                              f"Continue it with: {resume_command(out)}", highlight=False,
                              markup=False)
        raise typer.Exit(130 if how == "interrupted" else 143) from None
    target = "" if cfg.target == "class" else f", target {cfg.target}"
    table = Table(title=f"{cfg.data.protocol}{target}, {cfg.scenario}-incremental, "
                        f"{len(cfg.seeds)} seed(s), {cfg.train.iters} iterations per task")
    # The per-task curve is in results.md and accuracy_curve.png; the terminal gets the rest.
    header = report.table_header(result.summary)
    keep = [i for i, name in enumerate(header) if "after each task" not in name]
    for i in keep:
        table.add_column(header[i], justify="left" if i == 0 else "right")
    for row in report.table_rows(result.summary):
        table.add_row(*(row[i] for i in keep))
    console.print(table)
    for note in result.summary.get("data_notes", []):
        console.print(note, highlight=False, markup=False)
    batching = result.summary.get("seed_batching", {})
    together = [m for m, how in batching.items() if how.startswith("trained together")]
    if together:
        console.print(f"Seeds trained together as one stacked model: {', '.join(together)}.",
                      highlight=False, markup=False)
    for method, how in batching.items():
        if method not in together or "(" in how:  # one at a time, or a note in parentheses
            console.print(f"{method}: {how}.", highlight=False, markup=False)
    if cfg.hardware is not None:
        print_hardware_table(result.summary["hardware"], cfg)
    console.print(f"Results written to [bold]{out}[/] (report.md, report.html, results.md, "
                  "accuracy_curve.png, metrics per method and seed"
                  + (", hardware.md" if cfg.hardware else "") + ").")
    return out


def print_hardware_table(summary: dict[str, Any], cfg: RunConfig) -> None:
    from birram import onchip_report

    assert cfg.hardware is not None
    table = Table(title=f"on the chip: {cfg.hardware.chip}, {cfg.hardware.mode}, "
                        f"{cfg.hardware.chips} chip instance(s) per training run")
    # The per-task lists are in hardware.md; the terminal gets the rest.
    keep = [i for i, name in enumerate(onchip_report.HEADER) if "per task" not in name]
    for i in keep:
        table.add_column(onchip_report.HEADER[i], justify="left" if i == 0 else "right")
    for row in onchip_report.table_rows(summary):
        table.add_row(*(row[i] for i in keep))
    console.print(table)
    if "bir_over_best_conventional" in summary:
        console.print(f"BI-R on the devices: {summary['bir_over_best_conventional']:.2f}x the "
                      "best conventional method.")


def build(preset: str | None, sets: list[str], **options: Any) -> RunConfig:
    from birram.config import load_preset, resolve
    from birram.data.registry import protocol_spec
    from birram.run import check_run

    if options.get("measured") is not None and options.get("protocol") is None \
            and "protocol" not in (load_preset(preset).get("data", {}) if preset else {}):
        options["protocol"] = "rram-compliance"  # measured devices replace the simulated ones
    cfg = resolve(preset, _merge(overrides(**options), parse_assignments(sets)))
    protocol_spec(cfg.data.protocol)
    check_run(cfg)
    if cfg.hardware is not None:
        from birram.onchip import validate

        validate(cfg.hardware)
    return cfg


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    from birram.config import deep_update

    return deep_update(a, b)


@app.command()
@friendly_errors
@shared_options
def run(
    opts: SharedOptions,
    method: str | None = typer.Option(None, "--method", "-m",
                                      help="Method (see `birram methods`)."),
    seed: int | None = typer.Option(None, help="Random seed."),
) -> None:
    """Train one method on one protocol and write a run directory."""
    cfg = build(opts.preset, opts.set_, **opts.settings(), methods=[method] if method else None,
                seeds=[seed] if seed is not None else None)
    if len(cfg.methods) != 1:
        raise ConfigError(f"run trains one method; pass --method (the preset lists "
                          f"{', '.join(cfg.methods)}) or use `birram compare`")
    if len(cfg.seeds) != 1:  # a preset's seed list: run takes its first seed
        cfg = cfg.model_copy(update={"seeds": cfg.seeds[:1]})
    execute(cfg, opts.out, opts.resume)


@app.command()
@friendly_errors
@shared_options
def compare(
    opts: SharedOptions,
    methods: str | None = typer.Option(None,
                                       help="Comma-separated methods, e.g. none,ewc,si,bir."),
    ablation: bool = typer.Option(False, "--ablation",
                                  help="BI-R minus each component and GR plus each one."),
    seeds: str | None = typer.Option(None, help="Comma-separated seeds, e.g. 1,2,3."),
    chip: str | None = ChipOpt, chip_mode: str | None = ChipModeOpt, chips: int | None = ChipsOpt,
) -> None:
    """Compare several methods over several seeds: a table of mean and standard error.

    With --chip, the weights also live on simulated RRAM crossbars: accuracy on the devices,
    energy, writes and memory per method (hardware.md)."""
    from birram.methods.registry import ABLATION

    method_list = parse_list(methods, str, "--methods")
    if ablation:
        method_list = ABLATION
    cfg = build(opts.preset, opts.set_, **opts.settings(), methods=method_list,
                seeds=parse_list(seeds, int, "--seeds"), chip=chip, chip_mode=chip_mode,
                chips=chips)
    execute(cfg, opts.out, opts.resume)


@app.command()
@friendly_errors
def chips() -> None:
    """List the simulated chip presets (for --chip)."""
    from birram.hardware.chip import CHIP_PRESETS

    for name, config in CHIP_PRESETS.items():
        levels = "continuous" if config.n_levels is None else f"{config.n_levels} levels"
        faults = config.stuck_hrs_fraction + config.stuck_lrs_fraction
        console.print(f"{name:12s} {config.cells} cells, {levels}, DAC/ADC "
                      f"{config.dac_bits or 'ideal'}/{config.adc_bits or 'ideal'} bits, "
                      f"{100 * faults:.1f} % stuck devices, endurance "
                      f"{config.endurance_writes or 'unlimited'}", highlight=False)


@app.command()
@friendly_errors
def presets(name: str = typer.Argument(None, help="Show one preset in full.")) -> None:
    """List the presets, or print one."""
    from birram.config import available_presets, load_preset, preset_path

    if name is None:
        for preset in available_presets():
            description = load_preset(preset).get("name", preset)
            console.print(f"{preset:28s} {description}")
        return
    # Verbatim, not through rich (whose markup would eat the [section] headers): valid TOML.
    typer.echo(preset_path(name).read_text(encoding="utf-8"), nl=False)


@app.command(name="methods")
def list_methods() -> None:
    """List the methods."""
    from birram.methods.registry import METHODS

    for name, spec in METHODS.items():
        console.print(f"{name:20s} {spec.description}")


@app.command(name="protocols")
def list_protocols() -> None:
    """List the protocols."""
    from birram.data.registry import PROTOCOLS

    for name, spec in PROTOCOLS.items():
        console.print(f"{name:20s} {spec.description}")


def register_optional(module: str) -> None:
    """Commands that live beside their subsystem register themselves here."""
    import importlib

    try:
        importlib.import_module(module).register(app)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise


for _module in ("birram.rram.cli", "birram.rram.fit_cli", "birram.demo_cli", "birram.pretrain_cli",
                "birram.onchip_cli", "birram.rram.wordline_cli", "birram.sweep_cli",
                "birram.tune_cli"):
    register_optional(_module)


def main() -> None:
    app(prog_name="birram")


if __name__ == "__main__":
    sys.exit(main())
