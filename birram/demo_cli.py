"""``birram demo``: the main job, continual learning of RRAM conduction across compliance levels."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from birram.cli import build, execute, friendly_errors
    from birram.cli_options import ChipModeOpt, ChipsOpt, OutOpt, parse_list

    @app.command()
    @friendly_errors
    def demo(
        quick: bool = typer.Option(False, "--quick", help="A one-minute version (fewer seeds, "
                                   "iterations and devices)."),
        seeds: str = typer.Option(None, help="Comma-separated seeds (default: the preset's)."),
        view: str = typer.Option(None, help="RRAM input view: features or trace."),
        order: str = typer.Option("increasing", help="Order in which compliance levels "
                                  "arrive: increasing or decreasing."),
        device: str = typer.Option(None, help="cpu or cuda."),
        out: Path = OutOpt,
        resume: bool = typer.Option(False, "--resume", help="Continue a run in --out."),
        chip: str = typer.Option("rram-4bit", "--chip", help="The simulated chip the learners "
                                 "are also programmed onto after each task (see `birram "
                                 "chips`); none for digital only."),
        chip_mode: str = ChipModeOpt, chips: int = ChipsOpt,
        workers: int = typer.Option(None, "--workers", min=1, help="Methods trained at once, "
                                    "one process each (default: one per CPU core)."),
    ) -> None:
        """Simulate RRAM devices, learn their compliance levels one task at a time with BI-R
        and the conventional methods, program each learner onto simulated RRAM chips after
        every task, and write a report."""
        import os

        from birram.errors import ConfigError

        if order not in ("increasing", "decreasing"):
            raise ConfigError(f"--order must be increasing or decreasing, got {order!r}")
        preset = "rram-demo-quick" if quick else "rram-demo"
        if view == "trace" and not quick:
            preset, view = "rram-demo-trace", None  # the preset sizes the network for traces
        cfg = build(preset, [], seeds=parse_list(seeds, int, "--seeds"), view=view,
                    # model.pt2 of every learner; ONNX (and its int8 check) is for --export
                    device=device, export=True, export_formats=["pt2"],
                    chip=None if chip == "none" else chip,
                    chip_mode=chip_mode, chips=chips,
                    # one single-threaded process per core: small networks use one core each
                    workers=workers or max(1, min(os.cpu_count() or 1, 8)))
        if order == "decreasing":
            levels = int(cfg.data.rram.get("n_levels", 10))
            cfg.data.class_order = list(range(levels - 1, -1, -1))
        path = execute(cfg, out, resume)
        typer.echo(f"Report: {path / 'report.md'} (self-contained: {path / 'report.html'})")
