"""The one continual-learning loop every method goes through."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from birram.data.protocols import Protocol, Task
from birram.data.stream import StreamSampler, StreamSchedule
from birram.errors import TrainingDiverged
from birram.methods.base import Batch, Context, Method, StreamProgress, TrainingSet, TrainSettings
from birram.metrics import mean_absolute_error, r_squared

ProgressFn = Callable[[int, int, int], None]  # (task, iteration, iterations per task)


@dataclass
class TaskRecord:
    """What the loop stores after each task: the accuracy row and its cost."""

    task: int
    accuracies: list[float]  # accuracy on every task's test set after training this task
    seconds: float
    final_losses: dict[str, float]
    # A regression target's scores after this task: per-task "mae" and "r2" lists, and
    # "mae_seen"/"r2_seen" over the pooled test sets of the tasks seen so far (decades).
    regression: dict[str, Any] | None = None


@dataclass
class RunState:
    """Everything needed to resume a run at a task boundary."""

    records: list[TaskRecord] = field(default_factory=list)
    random_init_accuracies: list[float] = field(default_factory=list)
    # On a stream: the outputs and task ids its labels have shown so far (resume needs them).
    stream_seen_outputs: list[bool] | None = None
    stream_seen_tasks: list[bool] | None = None


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


class EpochSampler:
    """Shuffled passes over a training set, dropping the last incomplete batch."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device):
        self.n, self.batch_size = n, min(batch_size, n)
        self.generator, self.device = generator, device
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def next_indices(self) -> torch.Tensor:
        if self._pos + self.batch_size > self._order.numel():
            self._order = torch.randperm(self.n, generator=self.generator).to(self.device)
            self._pos = 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


def predicted_values(method: Method, ctx: Context, task: Task) -> torch.Tensor:
    """A regression model's prediction (model units) for every test input of ``task``."""
    batch = ctx.settings.eval_batch_size
    preds = [method.predict(ctx, task.x_test[start : start + batch])[:, 0]
             for start in range(0, task.x_test.shape[0], batch)]
    return torch.cat(preds) if preds else task.y_test.new_empty(0)


class TaskBatches:
    """Tasks with boundaries: the method is told each one and names its training set."""

    def __init__(self, method: Method, ctx: Context) -> None:
        self.method, self.ctx = method, ctx
        self.data: TrainingSet | None = None

    def begin(self) -> None:
        ctx = self.ctx
        self.method.before_task(ctx)
        self.data = self.method.training_set(ctx)
        self.sampler = EpochSampler(self.data.x.shape[0], ctx.settings.batch_size,
                                    ctx.generator, ctx.device)

    def next_batch(self, it: int) -> Batch:
        assert self.data is not None
        idx = self.sampler.next_indices()
        task_ids = self.data.task_ids[idx]
        return Batch(self.data.x[idx], self.data.y[idx], task_ids, self.ctx.sample_mask(task_ids))

    def step_done(self, batch: Batch, it: int) -> None:
        """Nothing between steps: tasks are consolidated at their boundary."""

    def end(self) -> None:
        assert self.data is not None
        self.method.after_task(self.ctx, self.data)


class UntoldStream:
    """A task-free stream (``protocol.stream``): each task of the protocol is one context's
    share of the stream; the method hears of no boundary, only ``start_stream`` once,
    ``observe`` after every step and ``consolidate`` every ``method.consolidate_every`` steps."""

    def __init__(self, method: Method, ctx: Context, state: RunState) -> None:
        if not method.runs_without_boundaries:
            from birram.methods.registry import needs_boundaries

            bound = [reg.name.replace("_", "-") for reg in method.regularisers
                     if not reg.boundary_free]
            raise needs_boundaries(bound[0] if method.boundary_free else method.name)
        spec = ctx.protocol.stream
        assert spec is not None
        p, iters = ctx.protocol, ctx.settings.iters
        self.schedule = StreamSchedule(p.n_tasks, iters, spec.transition_iters, spec.mode)
        self.method, self.ctx = method, ctx
        self.x = torch.cat([t.x_train for t in p.tasks])
        self.y = torch.cat([t.y_train for t in p.tasks])
        self.task_ids = torch.cat([torch.full_like(t.y_train, t.index) for t in p.tasks])
        self.sizes = [t.x_train.shape[0] for t in p.tasks]
        fresh = state.stream_seen_outputs is None
        outputs = torch.zeros(p.n_outputs, dtype=torch.bool) if fresh else \
            torch.tensor(state.stream_seen_outputs, dtype=torch.bool)
        tasks = torch.zeros(p.n_tasks, dtype=torch.bool) if fresh else \
            torch.tensor(state.stream_seen_tasks, dtype=torch.bool)
        ctx.stream = StreamProgress(outputs.to(ctx.device), tasks.to(ctx.device),
                                    len(state.records) * iters)
        self.state = state
        if fresh:
            method.start_stream(ctx)

    def begin(self) -> None:
        # A fresh sampler per share: a resumed run draws exactly what the uninterrupted one did.
        self.sampler = StreamSampler(self.schedule, self.sizes, self.ctx.settings.batch_size,
                                     self.ctx.generator,
                                     cumulative=self.method.stream_draws_everything_seen)

    def next_batch(self, it: int) -> Batch:
        ctx = self.ctx
        assert ctx.stream is not None
        ctx.stream.iteration = ctx.task * ctx.settings.iters + it
        idx, _ = self.sampler.next_indices(ctx.stream.iteration)
        idx = idx.to(ctx.device)
        y, task_ids = self.y[idx], self.task_ids[idx]
        ctx.stream.seen_outputs.index_fill_(0, y, True)
        ctx.stream.seen_tasks.index_fill_(0, task_ids, True)
        return Batch(self.x[idx], y, task_ids, ctx.sample_mask(task_ids))

    def step_done(self, batch: Batch, it: int) -> None:
        assert self.ctx.stream is not None
        self.method.observe(self.ctx, batch)
        if (self.ctx.stream.iteration + 1) % self.method.consolidate_every == 0:
            self.method.consolidate(self.ctx)

    def end(self) -> None:
        stream = self.ctx.stream
        assert stream is not None
        self.state.stream_seen_outputs = stream.seen_outputs.cpu().tolist()
        self.state.stream_seen_tasks = stream.seen_tasks.cpu().tolist()


def predicted_outputs(method: Method, ctx: Context, task: Task, mask: torch.Tensor
                      ) -> torch.Tensor:
    """The method's prediction for every test input of ``task``, batched, within ``mask``
    (for a regression target: the level nearest to the predicted value)."""
    target = ctx.protocol.regression
    if target is not None:
        return target.nearest_level(predicted_values(method, ctx, task))
    mask = mask.to(ctx.device)
    batch = ctx.settings.eval_batch_size
    preds = [method.predict(ctx, task.x_test[start : start + batch])
             .masked_fill(~mask, float("-inf")).argmax(1)
             for start in range(0, task.x_test.shape[0], batch)]
    return torch.cat(preds) if preds else task.y_test.new_empty(0)


@torch.no_grad()
def evaluate(method: Method, ctx: Context, trained_up_to: int,
             task_indices: list[int] | None = None) -> list[float]:
    """Test accuracy on each task (default all), batched, with the scenario's output mask."""
    was_training = ctx.model.training
    ctx.model.eval()
    accuracies = []
    indices = range(ctx.protocol.n_tasks) if task_indices is None else task_indices
    for task in (ctx.protocol.tasks[i] for i in indices):
        mask = ctx.protocol.eval_mask(trained_up_to, task.index)
        correct = (predicted_outputs(method, ctx, task, mask) == true_outputs(ctx, task)).sum()
        accuracies.append(float(correct) / max(task.x_test.shape[0], 1))
    ctx.model.train(was_training)
    return accuracies


def true_outputs(ctx: Context, task: Task) -> torch.Tensor:
    """The test labels of ``task``: classes, or for a regression target each sample's level."""
    target = ctx.protocol.regression
    return task.y_test if target is None else target.nearest_level(task.y_test)


@torch.no_grad()
def regression_scores(method: Method, ctx: Context, trained_up_to: int) -> dict[str, Any]:
    """MAE (decades) and R^2 on each task's test set, and pooled over the tasks seen so far."""
    target = ctx.protocol.regression
    assert target is not None
    was_training = ctx.model.training
    ctx.model.eval()
    pairs = [(target.to_decades(predicted_values(method, ctx, task)).cpu().double().numpy(),
              target.to_decades(task.y_test).cpu().double().numpy())
             for task in ctx.protocol.tasks]
    ctx.model.train(was_training)
    seen_p = np.concatenate([p for p, _ in pairs[: trained_up_to + 1]])
    seen_t = np.concatenate([t for _, t in pairs[: trained_up_to + 1]])
    return {"mae": [mean_absolute_error(p, t) for p, t in pairs],
            "r2": [r_squared(p, t) for p, t in pairs],
            "mae_seen": mean_absolute_error(seen_p, seen_t), "r2_seen": r_squared(seen_p, seen_t)}


@torch.no_grad()
def predictions(method: Method, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true outputs over every test set, masked as after the last task (for a
    regression target: predicted and true levels)."""
    ctx.model.eval()
    last = ctx.protocol.n_tasks - 1
    preds = [predicted_outputs(method, ctx, task, ctx.protocol.eval_mask(last, task.index)).cpu()
             for task in ctx.protocol.tasks]
    return torch.cat(preds), torch.cat([true_outputs(ctx, task).cpu()
                                        for task in ctx.protocol.tasks])


def make_context(protocol: Protocol, settings: TrainSettings, seed: int,
                 device: str | torch.device = "cpu") -> Context:
    device = torch.device(device)
    generator = seed_everything(seed)
    ctx = Context(protocol=protocol.to(device), settings=settings, device=device,
                  generator=generator)
    ctx.masks = ctx.protocol.task_masks().to(device)
    return ctx


class LoopHooks:
    """Points where a run can act around the loop without the methods knowing (e.g. keeping
    the model's weights on a simulated chip). The default hooks do nothing."""

    def step_done(self, ctx: Context, iteration: int) -> None:
        """After every optimiser step (and the method's ``after_step``)."""

    def task_trained(self, method: Method, ctx: Context) -> None:
        """After the last step of a task, before the method's ``after_task``."""

    def task_done(self, method: Method, ctx: Context, accuracies: list[float]) -> None:
        """After the loop's evaluation of a task (``accuracies``), before ``on_task_end``."""

    # Iterations between calls of ``losses_logged`` (0: never); reading the losses costs a
    # device synchronisation, so it is not done on every step.
    log_every: int = 0

    def losses_logged(self, ctx: Context, iteration: int, losses: dict[str, float]) -> None:
        """Every ``log_every`` iterations, after ``step_done``: the method's logged losses."""


class HookChain(LoopHooks):
    """Several hooks at once (a chip, a tracker, a pruner), called in the order given."""

    def __init__(self, hooks: list[LoopHooks]) -> None:
        self.hooks = hooks
        every = [h.log_every for h in hooks if h.log_every > 0]
        self.log_every = math.gcd(*every) if every else 0

    def step_done(self, ctx: Context, iteration: int) -> None:
        for h in self.hooks:
            h.step_done(ctx, iteration)

    def task_trained(self, method: Method, ctx: Context) -> None:
        for h in self.hooks:
            h.task_trained(method, ctx)

    def task_done(self, method: Method, ctx: Context, accuracies: list[float]) -> None:
        for h in self.hooks:
            h.task_done(method, ctx, accuracies)

    def losses_logged(self, ctx: Context, iteration: int, losses: dict[str, float]) -> None:
        for h in self.hooks:
            if h.log_every > 0 and (iteration + 1) % h.log_every == 0:
                h.losses_logged(ctx, iteration, losses)


def train_continual(
    method: Method,
    ctx: Context,
    progress: ProgressFn | None = None,
    state: RunState | None = None,
    on_task_end: Callable[[Context, RunState], None] | None = None,
    hooks: LoopHooks | None = None,
) -> RunState:
    """Train ``method`` on every task of ``ctx.protocol`` in turn, evaluating after each.

    ``ctx.model`` must already be built (see :func:`prepare`). With a ``state`` from a
    checkpoint, training resumes after the last recorded task. On a stream
    (``ctx.protocol.stream``) each task is one context's share of the stream and no boundary
    reaches the method (see :class:`UntoldStream`); the evaluation after each share fills the
    same accuracy matrix.
    """
    hooks = hooks or LoopHooks()
    state = state or RunState()
    if not state.random_init_accuracies:
        state.random_init_accuracies = evaluate_each_own_task(method, ctx)
    settings = ctx.settings
    assert ctx.optimizer is not None, "call prepare() first"
    source = (TaskBatches(method, ctx) if ctx.protocol.stream is None
              else UntoldStream(method, ctx, state))
    for t in range(len(state.records), ctx.protocol.n_tasks):
        ctx.task = t
        start = time.perf_counter()
        source.begin()
        ctx.model.train()
        logs: dict[str, torch.Tensor] = {}
        # The first iteration whose loss was not finite, kept on the device and read only every
        # CHECK_EVERY steps, so the guard costs no synchronisation per step.
        first_bad = torch.full((), -1, dtype=torch.long, device=ctx.device)
        for it in range(settings.iters):
            batch = source.next_batch(it)
            logs, first_bad = training_step(method, ctx, batch, it, first_bad)
            source.step_done(batch, it)
            hooks.step_done(ctx, it)
            if hooks.log_every > 0 and (it + 1) % hooks.log_every == 0:
                hooks.losses_logged(ctx, it, {k: float(v) for k, v in logs.items()})
            if (it + 1) % CHECK_EVERY == 0 or it + 1 == settings.iters:
                check_finite_loss(first_bad, t, ctx.settings.lr)
                if progress is not None:
                    progress(t, it + 1, settings.iters)
        check_finite_parameters(ctx.model, t, ctx.settings.lr)
        hooks.task_trained(method, ctx)
        source.end()
        check_finite_parameters(ctx.model, t, ctx.settings.lr)
        state.records.append(evaluated_record(method, ctx, hooks, time.perf_counter() - start,
                                              logs))
        if on_task_end is not None:
            on_task_end(ctx, state)
    return state


def evaluated_record(method: Method, ctx: Context, hooks: LoopHooks, seconds: float,
                     logs: dict[str, torch.Tensor]) -> TaskRecord:
    """The record of task ``ctx.task`` just trained: accuracy on every task (shown to
    ``hooks.task_done``), the last step's losses and, for a regression target, its scores."""
    t = ctx.task
    accuracies = evaluate(method, ctx, t)
    hooks.task_done(method, ctx, accuracies)
    scores = regression_scores(method, ctx, t) if ctx.protocol.regression else None
    return TaskRecord(t, accuracies, seconds, {k: float(v) for k, v in logs.items()}, scores)


def training_step(method: Method, ctx: Context, batch: Batch, it: int,
                  first_bad: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One optimiser step on ``batch``: the method's loss, backward, its gradient hook, the
    step and its after-step hook. Returns the logged losses and ``first_bad``, the first
    iteration whose loss was not finite (kept on the device: no synchronisation per step)."""
    assert ctx.optimizer is not None
    with step_precision(ctx):
        loss, logs = method.loss(ctx, batch)
    first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()),
                            torch.full_like(first_bad, it), first_bad)
    ctx.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    method.before_step(ctx)
    ctx.optimizer.step()
    method.after_step(ctx)
    return logs, first_bad


def step_precision(ctx: Context) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's arithmetic (``train.precision``). Under autocast, products run in
    bfloat16 with float32 accumulation and losses stay float32; the backward pass follows
    the forward's types, so it runs outside the context, as torch recommends."""
    if ctx.settings.precision == "bfloat16":
        return torch.autocast(ctx.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


CHECK_EVERY = 50  # iterations between reads of the non-finite-loss flag (and progress updates)


def _hint(lr: float) -> str:
    return (f"the run stopped and the checkpoint of the last completed task is kept; lower the "
            f"learning rate (--lr, now {lr:g}) or the regularisation strength")


def check_finite_loss(first_bad: torch.Tensor, task: int, lr: float) -> None:
    bad = int(first_bad)
    if bad >= 0:
        raise TrainingDiverged(f"the loss became NaN or infinite at task {task + 1}, iteration "
                               f"{bad + 1}; {_hint(lr)}")


def check_finite_parameters(model: torch.nn.Module, task: int, lr: float) -> None:
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise TrainingDiverged(f"parameter {name} became NaN or infinite during task "
                                   f"{task + 1}; {_hint(lr)}")


def evaluate_each_own_task(method: Method, ctx: Context) -> list[float]:
    """Accuracy of the untrained model on each task (the reference for forward transfer)."""
    return [evaluate(method, ctx, t, [t])[0] for t in range(ctx.protocol.n_tasks)]


def prepare(method: Method, ctx: Context) -> Context:
    """Build the method's model and optimiser on the context's device."""
    ctx.model = method.build_model(ctx).to(ctx.device)
    method.setup(ctx)
    ctx.optimizer = method.make_optimizer(ctx)
    if ctx.settings.compile:
        method.compile_step(ctx)
    return ctx


__all__ = ["HookChain", "LoopHooks", "RunState", "TaskRecord", "TrainingSet", "evaluate",
           "predictions", "prepare", "train_continual", "make_context"]
