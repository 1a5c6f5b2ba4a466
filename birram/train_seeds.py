"""Several seeds of one method trained at once, as one stacked model.

Each seed is first built exactly as its own run builds it (:func:`birram.train.prepare` after
seeding), so every seed starts from the parameters, gates and generator state of its own run.
The seeds' models (and a method's other trained modules, such as DGR's generator) are then
stacked (:mod:`birram.models.stacked`) and trained by one loop: each step concatenates one
batch per seed, drawn from that seed's data by that seed's generator, and the loss is the sum
of the seeds' own losses, so each seed's parameters follow their own run up to floating-point
rounding. After each task every seed's parameters are copied back into its own model, which
the single-seed code evaluates, pictures and saves exactly as in a separate run.

Methods and regularisers whose state has been written for stacked seeds are listed in
:data:`STACKABLE_METHODS` and :data:`STACKABLE_REGULARISERS`; :func:`why_not_stacked` says why
any other run falls back to one seed at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from birram.checkpoint import (
    UNFIT_ERRORS,
    load_state,
    refuse_non_finite,
    run_state_entry,
    run_state_from,
    save_state,
)
from birram.data.protocols import Protocol
from birram.errors import DataError
from birram.methods.base import Batch, Context, Method, TrainingSet, TrainSettings
from birram.models.stacked import NotStackable, copy_seed, stack_models
from birram.seeds import NoGenerator, SeedRows
from birram.train import (
    CHECK_EVERY,
    EpochSampler,
    LoopHooks,
    RunState,
    check_finite_loss,
    check_finite_parameters,
    evaluate_each_own_task,
    evaluated_record,
    make_context,
    prepare,
    training_step,
)

ProgressFn = Callable[[int, int, int], None]


def _stackable_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    from birram.methods.ewc import EWC, OnlineEWC
    from birram.methods.generative import BIR, DGR
    from birram.methods.joint import Joint
    from birram.methods.lwf import LwF
    from birram.methods.si import SI

    return (Method, Joint, LwF, BIR, DGR), (EWC, OnlineEWC, SI)


# Names for messages and docs (the types themselves are imported when needed).
STACKABLE_METHODS = ("none", "joint", "lwf", "ewc", "online-ewc", "si", "dgr", "dgr-distill",
                     "rtf", "bir", "bir-si", "and BI-R's ablations")
STACKABLE_REGULARISERS = ("ewc", "online_ewc", "si")


def why_not_stacked(method: Method, protocol: Protocol, n_seeds: int) -> str | None:
    """Why seeds of ``method`` on ``protocol`` cannot train stacked (None: they can)."""
    if n_seeds < 2:
        return "one seed"
    methods, regularisers = _stackable_types()
    if type(method) not in methods:
        return f"{method.name} keeps per-seed state that is not stacked"
    for reg in method.regularisers:
        if type(reg) not in regularisers:
            return f"its regulariser {reg.name} is not stacked"
    if protocol.stream is not None:
        return "a task-free stream draws differently per seed"
    return None


@dataclass
class SeedRun:
    """One seed of a stacked group: its own context and method, with a plain model that
    receives the seed's trained parameters after each task."""

    seed: int
    method: Method
    ctx: Context
    state: RunState = field(default_factory=RunState)
    # Hooks that act on the seed's own model at task boundaries only (chips programmed after
    # each task); nothing can act inside the stacked loop.
    hooks: LoopHooks = field(default_factory=LoopHooks)


@dataclass
class StackedGroup:
    method: Method  # the stacked method (stacked model, generator and regulariser state)
    ctx: Context  # the stacked context: ``rows`` holds every seed's generator
    runs: list[SeedRun]


def _same_structure(protocols: list[Protocol]) -> None:
    first = protocols[0]
    for p in protocols[1:]:
        if (p.n_tasks != first.n_tasks or p.n_outputs != first.n_outputs
                or p.scenario != first.scenario or p.input_shape != first.input_shape
                or not torch.equal(p.task_masks(), first.task_masks())
                or [t.x_train.shape[0] for t in p.tasks] != [t.x_train.shape[0]
                                                              for t in first.tasks]):
            raise NotStackable("the seeds' protocols differ in shape (tasks, outputs or sizes)")


def keeps_eager_step(settings: TrainSettings, device: torch.device) -> bool:
    """Whether stacked seeds train with the eager step although ``settings.compile`` asks for
    a compiled one. Measured (benchmarks/README.md): on a CPU, inductor's kernels for the
    stacked layers made 5 seeds' step 1.4x slower than eager, where one seed's gains 0-11 %."""
    return settings.compile and device.type == "cpu"


def stack_group(build: Callable[[], Method], protocols: dict[int, Protocol],
                settings: TrainSettings, device: torch.device | str = "cpu") -> StackedGroup:
    """Build each seed as its own run would, then one stacked method and context over them."""
    import copy

    seeds = list(protocols)
    runs = []
    for seed in seeds:
        method = build()
        runs.append(SeedRun(seed, method, prepare(method, make_context(protocols[seed],
                                                                       settings, seed, device))))
    reason = why_not_stacked(runs[0].method, runs[0].ctx.protocol, len(runs))
    if reason is not None:
        raise NotStackable(reason)
    _same_structure([r.ctx.protocol for r in runs])
    first = runs[0]
    ctx = Context(protocol=first.ctx.protocol, settings=settings, device=first.ctx.device,
                  generator=NoGenerator(),  # type: ignore[arg-type]
                  rows=SeedRows([r.ctx.generator for r in runs]))
    ctx.masks = first.ctx.masks
    # The lead method is a copy of seed 1's (its configuration from the protocol); its model
    # and trained modules are replaced by the stacked ones.
    lead = copy.deepcopy(first.method)
    if keeps_eager_step(settings, first.ctx.device):
        lead.eager_step()
    ctx.model = stack_models([r.ctx.model for r in runs])
    for name in lead.seed_modules():
        lead.set_seed_module(name, stack_models([r.method.seed_modules()[name] for r in runs])
                             .to(ctx.device), ctx)
    lead.stack_seeds(ctx)
    ctx.optimizer = lead.make_optimizer(ctx)
    return StackedGroup(lead, ctx, runs)


def copy_back(group: StackedGroup) -> None:
    """Every seed's trained parameters into its own model and modules."""
    for k, run in enumerate(group.runs):
        copy_seed(group.ctx.model, run.ctx.model, k)
        own = run.method.seed_modules()
        for name, module in group.method.seed_modules().items():
            copy_seed(module, own[name], k)


def _training_sets(group: StackedGroup) -> TrainingSet:
    method, ctx = group.method, group.ctx
    sets = [method.training_set(replace(ctx, protocol=r.ctx.protocol)) for r in group.runs]
    if len({s.x.shape[0] for s in sets}) > 1:
        raise NotStackable("the seeds' training sets differ in size")
    return TrainingSet(torch.cat([s.x for s in sets]), torch.cat([s.y for s in sets]),
                       torch.cat([s.task_ids for s in sets]))


def save_group_checkpoint(path: Path, group: StackedGroup) -> None:
    """The stacked group at a task boundary, in one file (as a seed's own checkpoint: no
    pickled code, a digest over everything)."""
    ctx = group.ctx
    assert ctx.optimizer is not None
    save_state(path, {
        "seeds": [run.seed for run in group.runs],
        "model": ctx.model.state_dict(),
        "optimizer": ctx.optimizer.state_dict(),
        "method": group.method.state_dict(),
        "runs": [{**run_state_entry(run.state), "generator": run.ctx.generator.get_state()}
                 for run in group.runs],
        "torch_rng": torch.get_rng_state(),
    })


def load_group_checkpoint(path: Path, group: StackedGroup) -> None:
    """Restore ``group`` (freshly built for the same seeds) at the boundary ``path`` holds;
    DataError naming the file and the fix if it is damaged or was written for other seeds."""
    payload = load_state(path)
    fix = f"delete {path} to train these seeds again from their first task"
    seeds = [run.seed for run in group.runs]
    if payload.get("seeds") != seeds:
        raise DataError(f"checkpoint {path} was written for seeds {payload.get('seeds')}, "
                        f"not {seeds}; {fix}")
    refuse_non_finite(path, payload, fix)
    ctx = group.ctx
    assert ctx.optimizer is not None
    try:
        states = [run_state_from(saved, ctx.protocol.n_tasks) for saved in payload["runs"]]
        done = {len(state.records) for state in states}
        if len(done) != 1:
            raise ValueError(f"the seeds hold {sorted(done)} task records")
        ctx.model.load_state_dict(payload["model"])
        ctx.optimizer.load_state_dict(payload["optimizer"])
        ctx.task = done.pop() - 1
        group.method.load_state_dict(payload["method"], ctx)
        for run, state, saved in zip(group.runs, states, payload["runs"]):
            run.state = state
            run.ctx.task = ctx.task
            run.ctx.generator.set_state(saved["generator"])
        torch.set_rng_state(payload["torch_rng"])
    except UNFIT_ERRORS as err:
        raise DataError(f"checkpoint {path} does not fit this run ({str(err)[:200]}); "
                        f"{fix}") from None
    copy_back(group)


def train_stacked(group: StackedGroup, progress: ProgressFn | None = None,
                  on_task_end: Callable[[SeedRun], None] | None = None,
                  checkpoint: Path | None = None) -> None:
    """Train every seed of ``group`` on every task, recording each seed's accuracies after
    each task in its ``state`` (as :func:`birram.train.train_continual` does for one).

    A group restored by :func:`load_group_checkpoint` goes on after its last finished task;
    with ``checkpoint``, the group is saved there after every task."""
    method, ctx, runs = group.method, group.ctx, group.runs
    settings = ctx.settings
    assert ctx.optimizer is not None
    first = len(runs[0].state.records)
    if first == 0:
        for run in runs:
            run.state.random_init_accuracies = evaluate_each_own_task(run.method, run.ctx)
    for t in range(first, ctx.protocol.n_tasks):
        ctx.task = t
        for run in runs:
            run.ctx.task = t
        start = time.perf_counter()
        method.before_task(ctx)
        data = _training_sets(group)
        n = data.x.shape[0] // len(runs)
        samplers = [EpochSampler(n, settings.batch_size, run.ctx.generator, ctx.device)
                    for run in runs]
        offsets = [k * n for k in range(len(runs))]
        ctx.model.train()
        logs: dict[str, torch.Tensor] = {}
        first_bad = torch.full((), -1, dtype=torch.long, device=ctx.device)
        for it in range(settings.iters):
            idx = torch.cat([s.next_indices() + off for s, off in zip(samplers, offsets)])
            task_ids = data.task_ids[idx]
            batch = Batch(data.x[idx], data.y[idx], task_ids, ctx.sample_mask(task_ids))
            logs, first_bad = training_step(method, ctx, batch, it, first_bad)
            if (it + 1) % CHECK_EVERY == 0 or it + 1 == settings.iters:
                check_finite_loss(first_bad, t, settings.lr)
                if progress is not None:
                    progress(t, it + 1, settings.iters)
        check_finite_parameters(ctx.model, t, settings.lr)
        method.after_task(ctx, data)
        copy_back(group)
        seconds = (time.perf_counter() - start) / len(runs)  # each seed's share of the task
        for run in runs:  # the losses logged are pooled over the seeds
            run.hooks.task_trained(run.method, run.ctx)
            run.state.records.append(evaluated_record(run.method, run.ctx, run.hooks, seconds,
                                                      logs))
            if on_task_end is not None:
                on_task_end(run)
        if checkpoint is not None:
            save_group_checkpoint(checkpoint, group)


__all__ = ["STACKABLE_METHODS", "SeedRun", "StackedGroup", "copy_back", "load_group_checkpoint",
           "save_group_checkpoint", "stack_group", "train_stacked", "why_not_stacked"]
