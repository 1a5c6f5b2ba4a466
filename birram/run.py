"""Run experiments: each (method, seed) is a directory; an experiment gathers them.

Layout of an experiment directory::

    config.json              resolved configuration
    summary.json             mean and standard error per method, per-task curves
    results.csv, results.md  the table printed at the end
    accuracy_curve.png       average accuracy after each task, one line per method
    <method>/seed-<s>/       config.json, metrics.json, accuracy_matrix.csv, confusion.csv,
                             checkpoint.safetensors while running (resume at task boundaries),
                             manifest.json once complete (digests of the results)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as save_tensors

from birram import io, report, rundir
from birram.checkpoint import load_checkpoint, save_checkpoint
from birram.config import RunConfig
from birram.data.protocols import Protocol
from birram.data.registry import build_protocol, load_dataset
from birram.data.types import ArrayDataset
from birram.errors import ConfigError, TrainingDiverged
from birram.methods.base import Context, Method, TrainSettings
from birram.methods.registry import build_method, check_cpu_compiler, check_methods
from birram.metrics import confusion_matrix, per_class_accuracy, summarise, summarise_regression
from birram.results import (
    MAE_FILE,
    RESULT_FILES,
    SeedResult,
    load_seed_result,
    matrix_csv,
    summarise_experiment,
)
from birram.train import (
    HookChain,
    LoopHooks,
    RunState,
    make_context,
    predictions,
    prepare,
    train_continual,
)

CHECKPOINT = "checkpoint.safetensors"
MODEL_FILE = "model.safetensors"  # the trained model's state dict, tensors only
ProgressFactory = Callable[[str, int], Callable[[int, int, int], None]]


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu or cuda[:N]") from None


def settings_from(cfg: RunConfig) -> TrainSettings:
    return TrainSettings(iters=cfg.train.iters, batch_size=cfg.train.batch_size, lr=cfg.train.lr,
                         hidden=tuple(cfg.train.hidden), compile=cfg.train.compile,
                         compile_mode=cfg.train.compile_mode, precision=cfg.train.precision)


def load_extractor(cfg: RunConfig) -> torch.nn.Module | None:
    if cfg.data.extractor is None:
        return None
    from birram.pretrain import load_extractor as load

    return load(cfg.data.extractor)


def write_seed_config(cfg: RunConfig, method_name: str, seed: int, run_dir: Path) -> None:
    """A seed directory's ``config.json`` (what ``birram onchip`` and sweeps read back to
    rebuild the trained learner)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    io.write_json(run_dir / "config.json", cfg.seed_record(method_name, seed))


def run_seed(
    cfg: RunConfig,
    method_name: str,
    seed: int,
    protocol: Protocol,
    run_dir: Path,
    resume: bool = True,
    progress: Callable[[int, int, int], None] | None = None,
    extractor: torch.nn.Module | None = None,
    chip_instance: int = 1,
    extra_hooks: Sequence[LoopHooks] = (),
) -> SeedResult:
    """Train one method with one seed; write its directory; resume from a checkpoint if any.

    With ``cfg.hardware`` the weights also live on simulated chips (``birram.onchip``); such a
    run is resumed per finished (method, seed, chip) directory, not within one. With
    ``cfg.track`` the run is also logged to TensorBoard or MLflow; ``extra_hooks`` act on the
    loop too (e.g. a hyperparameter search stopping an unpromising run after a task).
    """
    if resume and rundir.is_sealed(run_dir):
        rundir.verify(run_dir)
        return load_seed_result(run_dir, protocol.n_tasks)
    device = resolve_device(cfg.train.device)
    method = build_method(method_name, cfg.method, extractor, target=cfg.target)
    ctx = prepare(method, make_context(protocol, settings_from(cfg), seed, device))
    chip_hooks = None
    if cfg.hardware is not None:
        from birram import onchip

        chip_hooks = onchip.hooks_for(cfg.hardware, chip_instance)
        chip_hooks.setup(method, ctx)
    tracker = None
    if cfg.track is not None:
        from birram.tracking import tracker_for

        tracker = tracker_for(cfg, method_name, seed, run_dir)
    chain = [h for h in (chip_hooks, tracker) if h is not None] + list(extra_hooks)
    hooks = HookChain(chain) if chain else None
    write_seed_config(cfg, method_name, seed, run_dir)
    checkpoint_path = run_dir / CHECKPOINT
    state = (load_checkpoint(checkpoint_path, method, ctx)
             if resume and hooks is None and checkpoint_path.exists() else None)
    started = time.perf_counter()

    def on_task_end(c: Context, s: RunState) -> None:
        save_replay_samples(method, c, run_dir)
        if chip_hooks is None:  # a chip's state is not checkpointed: its run restarts whole
            save_checkpoint(checkpoint_path, method, c, s)

    try:
        state = train_continual(method, ctx, progress=progress, state=state,
                                on_task_end=on_task_end, hooks=hooks)
    except BaseException as err:
        if tracker is not None:
            tracker.close()
        if isinstance(err, TrainingDiverged):
            raise TrainingDiverged(f"{method_name}, seed {seed}: {err}") from None
        raise
    wall = time.perf_counter() - started
    return complete_seed(cfg, method_name, seed, method, ctx, state, run_dir, wall, chip_hooks,
                         tracker)


def complete_seed(cfg: RunConfig, method_name: str, seed: int, method: Method, ctx: Context,
                  state: RunState, run_dir: Path, wall: float, chip_hooks: Any = None,
                  tracker: Any = None, extra: dict[str, Any] | None = None,
                  bytes_kept: int | None = None) -> SeedResult:
    """Write a trained seed's results, model and exports, then seal its directory.
    ``bytes_kept`` overrides what the chip report says the method keeps between tasks (for
    seeds trained together, whose state lives in the stacked method)."""
    result = finish_seed(cfg, method_name, seed, method, ctx, state, run_dir, wall, extra)
    files = list(RESULT_FILES) + ([MAE_FILE] if cfg.target != "class" else [])
    if chip_hooks is not None:
        chip_result = chip_hooks.finish(method, ctx)
        if bytes_kept is not None:
            chip_result["bytes_kept_between_tasks"] = bytes_kept
        io.write_json(run_dir / "hardware.json", chip_result)
        files.append("hardware.json")
    io.write_bytes(run_dir / MODEL_FILE, save_tensors(
        {k: v.detach().cpu().contiguous().clone() for k, v in ctx.model.state_dict().items()}))
    files.append(MODEL_FILE)  # sealed too: a chip sweep reads it back
    # A hardware-aware model holds crossbar layers; program-after-task trains a digital one.
    if cfg.export and (cfg.hardware is None or cfg.hardware.mode == "program-after-task"):
        from birram.export import export_all

        export_all(method, ctx, run_dir, cfg.export_formats)
    rundir.seal(run_dir, files)
    (run_dir / CHECKPOINT).unlink(missing_ok=True)
    if tracker is not None:
        tracker.finish(result.metrics, run_dir)
    return result


def save_replay_samples(method: Method, ctx: Context, run_dir: Path) -> None:
    """For generative replay: a grid of what the model would replay after this task."""
    from birram.methods.generative import BIR
    from birram.methods.replay_pictures import sample_grid

    # The grid shows replay per class; a regression target has none to sort samples by.
    if isinstance(method, BIR) and ctx.protocol.regression is None:
        sample_grid(method, ctx, run_dir / f"replay_samples_task{ctx.task + 1}.png")


def finish_seed(cfg: RunConfig, method_name: str, seed: int, method: Method, ctx: Context,
                state: RunState, run_dir: Path, wall: float,
                extra: dict[str, Any] | None = None) -> SeedResult:
    r = np.array([rec.accuracies for rec in state.records])
    b = np.array(state.random_init_accuracies)
    summary = summarise(r, b, fwt_defined=ctx.protocol.scenario != "class")
    pred, truth = predictions(method, ctx)
    target = ctx.protocol.regression
    # For a regression target: confusion and per-class accuracy of the nearest levels.
    names = ctx.protocol.output_names if target is None else target.level_names
    n_out = len(names)
    conf = confusion_matrix(pred.numpy(), truth.numpy(), n_out)
    train_seconds = sum(rec.seconds for rec in state.records)
    iters = cfg.train.iters * ctx.protocol.n_tasks
    metrics = {
        **summary.to_dict(),
        "per_class_accuracy": dict(zip(names, per_class_accuracy(pred.numpy(), truth.numpy(),
                                                                 n_out).tolist())),
        "per_task_seconds": [rec.seconds for rec in state.records],
        "final_losses": state.records[-1].final_losses,
        "wall_seconds": wall,
        "iterations_per_second": iters / train_seconds if train_seconds > 0 else float("nan"),
        "random_init_accuracies": b.tolist(),
        "accuracy_matrix": r.tolist(),
        "output_names": list(names),
        **(extra or {}),
    }
    if target is not None:
        regression = summarise_regression([rec.regression for rec in state.records])
        metrics["target"] = target.name
        metrics["regression"] = regression.to_dict()
        io.write_text(run_dir / MAE_FILE, matrix_csv(np.array(regression.mae_matrix)))
    io.write_text(run_dir / "accuracy_matrix.csv", matrix_csv(r))
    io.write_text(run_dir / "confusion.csv",
                  matrix_csv(conf, fmt="{:d}", rows="true", columns="predicted_", first=0))
    io.write_json(run_dir / "metrics.json", metrics)
    return SeedResult(method_name, seed, r, b, metrics, wall, metrics["iterations_per_second"],
                      conf)


@dataclass
class ExperimentResult:
    out_dir: Path
    results: list[SeedResult]
    summary: dict[str, Any]


def run_experiment(
    cfg: RunConfig,
    out_dir: Path,
    resume: bool = True,
    progress: ProgressFactory | None = None,
    data: ArrayDataset | None = None,
) -> ExperimentResult:
    """Every method in ``cfg.methods`` with every seed, then the summary, table and plots.

    ``data`` replaces the dataset the protocol names (for data already in memory).
    """
    own_data = data is None  # the report describes the configured dataset, not other data
    inputs = prepare_experiment(cfg, data)
    start_experiment_dir(cfg, out_dir)
    results: list[SeedResult] = []
    batching: dict[str, str] = {}
    if cfg.train.workers > 1 and len(cfg.methods) > 1:
        from birram.run_parallel import run_methods_in_parallel

        results, batching = run_methods_in_parallel(cfg, out_dir, resume, progress, data)
    elif cfg.train.batch_seeds and len(cfg.seeds) > 1:
        from birram.run_seeds import run_method_seeds

        for name in cfg.methods:
            done, batching[name] = run_method_seeds(cfg, name, inputs, out_dir, resume,
                                                    progress)
            results += done
    else:
        for seed in cfg.seeds:
            for name in cfg.methods:
                results += run_method_seed(cfg, name, seed, inputs.protocols[seed],
                                           out_dir / name / f"seed-{seed}", resume, progress,
                                           inputs.extractor)
    summary = finish_experiment(cfg, out_dir, results, inputs.data_notes,
                                describe_devices=own_data, seed_batching=batching)
    return ExperimentResult(out_dir, results, summary)


@dataclass
class ExperimentInputs:
    protocols: dict[int, Protocol]  # per seed: permuted protocols draw from it, split ones not
    extractor: torch.nn.Module | None
    data_notes: tuple[str, ...]  # what was read and what was left out (measured data)


def prepare_experiment(cfg: RunConfig, data: ArrayDataset | None = None) -> ExperimentInputs:
    """Everything that can fail on bad input, done before the first file is written."""
    check_run(cfg)
    resolve_device(cfg.train.device)
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    data = data if data is not None else load_dataset(cfg.data)
    extractor = load_extractor(cfg)
    protocols = {seed: build_protocol(cfg.data, cfg.scenario, data, permutation_seed=seed,
                                      target=cfg.target)
                 for seed in cfg.seeds}
    return ExperimentInputs(protocols, extractor, data.notes)


def start_experiment_dir(cfg: RunConfig, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    io.remove_stale_temporaries(out_dir)
    io.write_json(out_dir / "config.json", cfg.model_dump(mode="json"))


def run_method_seed(
    cfg: RunConfig,
    name: str,
    seed: int,
    protocol: Protocol,
    seed_dir: Path,
    resume: bool = True,
    progress: ProgressFactory | None = None,
    extractor: torch.nn.Module | None = None,
    extra_hooks: Sequence[LoopHooks] = (),
) -> list[SeedResult]:
    """One (method, seed) of an experiment: one run, or one per chip (hardware-aware)."""
    results = []
    for instance, run_dir in seed_dirs(cfg, seed_dir):
        label = f"{name} seed {seed}" + (f" chip {instance}" if instance else "")
        tick = progress(label, cfg.train.iters * protocol.n_tasks) if progress else None
        results.append(run_seed(cfg, name, seed, protocol, run_dir, resume, tick, extractor,
                                chip_instance=instance or 1, extra_hooks=extra_hooks))
    return results


def is_finished(cfg: RunConfig, seed_dir: Path) -> bool:
    """Whether every run of this (method, seed) is sealed (a resume would only read it)."""
    return all(rundir.is_sealed(run_dir) for _, run_dir in seed_dirs(cfg, seed_dir))


def finish_experiment(cfg: RunConfig, out_dir: Path, results: list[SeedResult],
                      data_notes: Sequence[str] = (), describe_devices: bool = True,
                      seed_batching: dict[str, str] | None = None) -> dict[str, Any]:
    """The summary, tables, figures and report of a finished experiment; returns the summary.

    ``describe_devices``: the report describes the simulated devices of an RRAM run (only
    right when the data came from the run's configuration)."""
    summary = summarise_experiment(cfg, results)
    if data_notes:
        summary["data_notes"] = list(data_notes)
    if seed_batching:  # per method: seeds trained together, or why one at a time
        summary["seed_batching"] = seed_batching
    io.write_json(out_dir / "summary.json", summary)
    report.write_experiment_report(out_dir, cfg, summary, results)
    if cfg.hardware is not None:
        from birram import onchip_report

        summary["hardware"] = onchip_report.write_hardware_report(out_dir, cfg)
    report.write_report_page(out_dir, cfg, summary, results, describe_devices)
    return summary


def check_run(cfg: RunConfig) -> None:
    """What the config names can run together (before any data are loaded or written)."""
    from birram.data.registry import check_measured, check_target

    check_measured(cfg.data)
    check_target(cfg.data, cfg.target)
    check_methods(cfg.methods, cfg.scenario, cfg.target, stream=cfg.data.stream is not None,
                  compile_step=cfg.train.compile)
    if cfg.train.compile and resolve_device(cfg.train.device).type == "cpu":
        check_cpu_compiler()
    if cfg.data.stream is not None:  # the window must fit the iterations per context
        from birram.data.stream import StreamSchedule

        StreamSchedule(1, cfg.train.iters, cfg.data.stream.transition_iters, cfg.data.stream.mode)
    if cfg.target != "class" and cfg.hardware is not None:
        raise ConfigError(f"target {cfg.target} runs digitally only; leave out --chip "
                          "(the chip reports score classes)")
    if cfg.target != "class" and cfg.scenario == "task":
        raise ConfigError(f"target {cfg.target} is one output shared by every task; use "
                          "scenario class or domain (they coincide here), not task")
    if cfg.export:
        from birram.export import check_formats

        check_formats(cfg.export_formats)


def seed_dirs(cfg: RunConfig, seed_dir: Path) -> list[tuple[int, Path]]:
    """``(chip instance, directory)`` of each training run of one (method, seed): one run, or
    one per chip when every chip trains its own network (hardware-aware)."""
    hw = cfg.hardware
    if hw is None or hw.mode != "hardware-aware":
        return [(0, seed_dir)]
    return [(k, seed_dir / f"chip-{k}") for k in range(1, hw.chips + 1)]
