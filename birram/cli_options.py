"""Options of the training commands, each declared once.

``run`` and ``compare`` take the same protocol, training and output options; they are the
fields of :class:`SharedOptions`, and :func:`shared_options` adds them to a command, which then
receives them as one ``opts`` argument. A new shared option is one field here (and, if it sets
the configuration, one entry in ``birram.cli.overrides``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from typer.models import OptionInfo

from birram.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

PresetOpt = typer.Option(None, "--preset", "-p", help="Named preset (see `birram presets`).")
ProtocolOpt = typer.Option(None, help="Protocol, e.g. split-fashion, rram-compliance.")
ScenarioOpt = typer.Option(None, help="task, domain or class.")
IterOpt = typer.Option(None, "--iters", min=1, help="Iterations per task.")
BatchOpt = typer.Option(None, "--batch-size", min=1, help="Minibatch size.")
LrOpt = typer.Option(None, "--lr", min=0.0, help="Adam learning rate.")
HiddenOpt = typer.Option(None, "--hidden", help="Hidden units per layer, e.g. 400,400.")
TasksOpt = typer.Option(None, "--n-tasks", min=1, help="Number of tasks.")
OrderOpt = typer.Option(None, "--class-order", help="Class order, e.g. 9,8,7,6,5,4,3,2,1,0.")
DataDirOpt = typer.Option(None, "--data-dir", help="Directory holding the dataset files.")
DownloadOpt = typer.Option(None, "--download/--no-download", help="Download MNIST if missing.")
ViewOpt = typer.Option(None, "--view", help="RRAM input view: features or trace.")
MeasuredOpt = typer.Option(None, "--data", help="A directory of measured I-V sweeps (CSV/TSV "
                           "tables, EasyEXPERT exports) in place of the simulated devices; "
                           "the protocol defaults to rram-compliance.")
TargetOpt = typer.Option(None, "--target", help="What is learnt: class (default) or log10-icc "
                         "(the compliance current as a number; RRAM protocols, MAE and R^2).")
ExtractorOpt = typer.Option(None, "--extractor",
                            help="Pre-trained feature extractor (birram pretrain).")
DeviceOpt = typer.Option(None, "--device", help="cpu or cuda.")
ThreadsOpt = typer.Option(None, "--threads", min=1,
                          help="CPU threads (1 is fastest for small models).")
WorkersOpt = typer.Option(None, "--workers", min=1,
                          help="Methods trained at once, one process each (default 1).")
BatchSeedsOpt = typer.Option(None, "--batch-seeds/--no-batch-seeds",
                             help="Train a method's seeds together as one stacked model where "
                             "the method supports it (default), or one after another.")
CompileOpt = typer.Option(None, "--compile/--no-compile",
                          help="Compile each training step into one graph (torch.compile; "
                          "generative replay only; pays most on a GPU).")
PrecisionOpt = typer.Option(None, "--precision",
                            help="The training step's arithmetic: float32 (default) or bfloat16 "
                            "(products in bfloat16 under autocast; pays on processors with "
                            "bfloat16 instructions).")
OutOpt = typer.Option(None, "--out", "-o", help="Run directory (default: runs/NAME-...).")
ResumeOpt = typer.Option(False, "--resume", help="Continue an interrupted run in --out.")
ExportOpt = typer.Option(None, "--export/--no-export",
                         help="Also write each trained model for edge runtimes: model.pt2 "
                         "(torch.export), model.onnx and model.int8.onnx (pip install "
                         "birram[export]), checked in export.json; export_formats chooses.")
SetOpt = typer.Option([], "--set", help="Any setting, e.g. method.si_c=0.1 (repeatable).")
ChipOpt = typer.Option(None, "--chip", help="Put the weights on a simulated chip (see "
                       "`birram chips`), e.g. rram-4bit.")
ChipModeOpt = typer.Option(None, "--chip-mode", help="program-after-task (train digitally, "
                           "program after each task) or hardware-aware (train on the chip).")
ChipsOpt = typer.Option(None, "--chips", help="Chip instances (device-variability draws).")


def option(info: OptionInfo) -> Any:
    """A field whose command-line form is ``info`` (typer always passes every field)."""
    return dataclasses.field(metadata={"option": info})


@dataclass(frozen=True)
class SharedOptions:
    """What ``run`` and ``compare`` both take, as given on the command line (None: not given)."""

    preset: str | None = option(PresetOpt)
    protocol: str | None = option(ProtocolOpt)
    scenario: str | None = option(ScenarioOpt)
    iters: int | None = option(IterOpt)
    batch_size: int | None = option(BatchOpt)
    lr: float | None = option(LrOpt)
    hidden: str | None = option(HiddenOpt)
    n_tasks: int | None = option(TasksOpt)
    class_order: str | None = option(OrderOpt)
    data_dir: Path | None = option(DataDirOpt)
    download: bool | None = option(DownloadOpt)
    view: str | None = option(ViewOpt)
    extractor: Path | None = option(ExtractorOpt)
    device: str | None = option(DeviceOpt)
    threads: int | None = option(ThreadsOpt)
    workers: int | None = option(WorkersOpt)
    batch_seeds: bool | None = option(BatchSeedsOpt)
    compile: bool | None = option(CompileOpt)
    precision: str | None = option(PrecisionOpt)
    out: Path | None = option(OutOpt)
    resume: bool = option(ResumeOpt)
    export: bool | None = option(ExportOpt)
    set_: list[str] = option(SetOpt)
    measured: Path | None = option(MeasuredOpt)
    target: str | None = option(TargetOpt)

    def settings(self) -> dict[str, Any]:
        """The options that set the configuration, parsed, as ``birram.cli.build`` takes them."""
        return {
            "protocol": self.protocol, "scenario": self.scenario, "iters": self.iters,
            "batch_size": self.batch_size, "lr": self.lr,
            "hidden": parse_list(self.hidden, int, "--hidden"), "n_tasks": self.n_tasks,
            "class_order": parse_list(self.class_order, int, "--class-order"),
            "data_dir": self.data_dir, "download": self.download, "view": self.view,
            "extractor": self.extractor, "device": self.device, "threads": self.threads,
            "workers": self.workers, "batch_seeds": self.batch_seeds, "compile": self.compile,
            "precision": self.precision,
            "export": self.export, "measured": self.measured, "target": self.target,
        }


def shared_options(func: F) -> F:
    """Add the fields of :class:`SharedOptions` to the command ``func(opts, ...)``."""
    own = [p for p in inspect.signature(func, eval_str=True).parameters.values()
           if p.name != "opts"]
    hints = typing.get_type_hints(SharedOptions)
    fields = dataclasses.fields(SharedOptions)
    added = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                               default=f.metadata["option"]) for f in fields]

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        opts = SharedOptions(**{f.name: kwargs.pop(f.name) for f in fields})
        return func(opts, **kwargs)

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added)
    command.__annotations__ = {**{p.name: p.annotation for p in own},
                               **{f.name: hints[f.name] for f in fields}}
    return command  # type: ignore[return-value]


def parse_list(text: str | None, kind: type, option: str) -> list | None:
    if text is None:
        return None
    try:
        return [kind(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise ConfigError(f"{option} expects a comma-separated list of {kind.__name__}, "
                          f"got {text!r}") from None
