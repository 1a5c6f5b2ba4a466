"""The strategy interface every continual-learning method implements.

A method never owns a loop: :func:`birram.train.train_continual` draws the batches, steps the
optimiser and evaluates; a method builds its model, turns a batch into a loss and reacts to
task boundaries. Regularisers (EWC, SI) and replay sources (buffer, generator, the model's own
feedback) are separate objects a method holds, so they compose (BI-R + SI is BI-R holding SI).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from birram.data.protocols import Protocol
from birram.errors import ConfigError
from birram.seeds import SeedRows

# A finite stand-in for -inf: masked logits give exactly zero probability without producing
# NaN in 0 * log(0) terms of soft-target losses.
MASKED_LOGIT = -1e9


@dataclass(frozen=True)
class TrainSettings:
    """What the loop needs to know; methods read these too (e.g. batch size for replay)."""

    iters: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    hidden: tuple[int, ...] = (400, 400)
    eval_batch_size: int = 1024
    compile: bool = False  # compile the training step (methods that offer one)
    compile_mode: str = "default"  # torch.compile's mode
    precision: str = "float32"  # "bfloat16": the step's forward pass under torch.autocast


@dataclass
class StreamProgress:
    """What a task-free stream has shown so far, as a learner can tell from its labels."""

    seen_outputs: torch.Tensor  # bool [n_outputs]: outputs some label so far has used
    seen_tasks: torch.Tensor  # bool [n_tasks]: task ids some sample so far has carried
    iteration: int = 0  # iterations of the stream done (0-based index of the current one)


@dataclass
class Context:
    """The state of a run that the loop shares with the method."""

    protocol: Protocol
    settings: TrainSettings
    device: torch.device
    generator: torch.Generator  # every random draw during training comes from here
    model: nn.Module = field(default=None)  # type: ignore[assignment]
    task: int = 0  # index of the task being trained (0-based)
    masks: torch.Tensor = field(default=None)  # type: ignore[assignment]  # [n_tasks, n_outputs]
    optimizer: torch.optim.Optimizer | None = None
    # On a task-free stream (``protocol.stream``): what it has shown so far. ``task`` is then
    # the loop's bookkeeping (which share of the stream is running) and methods must not read it.
    stream: StreamProgress | None = None
    # The seeds trained in this context (one, or several as one stacked model): every draw
    # during training goes through ``rows`` (for one seed, the same stream as ``generator``).
    rows: SeedRows = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = SeedRows([self.generator])

    @property
    def tasks_seen(self) -> int:
        return self.task + 1

    def sample_mask(self, task_ids: torch.Tensor) -> torch.Tensor:
        """Active outputs for samples from ``task_ids`` while training the current task.

        Task-incremental: each sample's own task head; otherwise every output active now
        (all classes seen so far in class-IL, all outputs in domain-IL). On a stream, the
        classes seen so far are those its labels have shown.
        """
        if self.protocol.scenario == "task":
            return self.masks[task_ids]
        if self.stream is not None and self.protocol.scenario == "class":
            return self.stream.seen_outputs.expand(task_ids.shape[0], -1)
        return self.masks[self.task].expand(task_ids.shape[0], -1)


@dataclass
class Batch:
    x: torch.Tensor
    y: torch.Tensor
    task_ids: torch.Tensor
    mask: torch.Tensor  # bool [B, n_outputs]: which outputs the loss may use


# A replayed batch's loss and what to log of it.
ReplayLoss = tuple[torch.Tensor, dict[str, Any]]


@dataclass
class CurrentLoss:
    """What :meth:`Method.current` hands to the rest of the step (:meth:`Method.total_loss`)."""

    loss: torch.Tensor  # mean loss on the current batch (one per seed when seeds are stacked)
    logs: dict[str, Any]
    # The model's output on the batch's inputs: replay on the current inputs (LwF) reuses it.
    logits: torch.Tensor | None = None
    # The replay loss, where it came out of the same forward pass as the current one (BI-R);
    # :meth:`Method.replay_loss` is then not asked.
    replay: ReplayLoss | None = None


@dataclass
class TrainingSet:
    x: torch.Tensor
    y: torch.Tensor
    task_ids: torch.Tensor


def one_hot(labels: torch.Tensor, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A one-hot matrix of ``dtype``. ``F.one_hot`` reads the labels' range back to the host
    to check it, a synchronisation per call on a GPU; indices out of range fail in ``scatter_``
    too."""
    out = torch.zeros(labels.shape[0], n, dtype=dtype, device=labels.device)
    return out.scatter_(1, labels[:, None], 1.0)


def masked(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(~mask, MASKED_LOGIT)


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0,
    t_squared: bool = True,
) -> torch.Tensor:
    """Cross-entropy from softened teacher to softened student, scaled by T^2 (Hinton et al.,
    and the BI-R paper's ``loss_fn_kd``); ``t_squared=False`` leaves it unscaled, as the newer
    reference code's ``loss_fn_kd(norm=False)`` does.

    Both arguments must already be masked; it is zero-gradient (and minimal) when equal.
    """
    t = temperature
    target = F.softmax(teacher_logits / t, dim=1)
    log_student = F.log_softmax(student_logits / t, dim=1)
    log_target = F.log_softmax(teacher_logits / t, dim=1)
    # KL rather than plain cross-entropy so the loss is exactly zero when student == teacher.
    loss = (target * (log_target - log_student)).sum(1).mean()
    return loss * t * t if t_squared else loss


@dataclass
class Known:
    """What a frozen previous model had been shown when it was taken on a stream."""

    outputs: torch.Tensor  # bool [n_outputs], on the training device
    tasks: torch.Tensor  # bool [n_tasks]
    # The same as index lists on the CPU, made once (replay draws from them every step).
    output_list: torch.Tensor = field(init=False)
    task_list: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.output_list = self.outputs.nonzero().squeeze(1).cpu()
        self.task_list = self.tasks.nonzero().squeeze(1).cpu()

    @classmethod
    def now(cls, ctx: Context) -> Known:
        assert ctx.stream is not None
        return cls(ctx.stream.seen_outputs.clone(), ctx.stream.seen_tasks.clone())

    def teacher_mask(self, ctx: Context, task_ids: torch.Tensor) -> torch.Tensor:
        """Outputs the previous model may use for samples standing for ``task_ids``."""
        if ctx.protocol.scenario == "task":
            return ctx.masks[task_ids]
        if ctx.protocol.scenario == "class":
            return self.outputs.expand(task_ids.shape[0], -1)
        return ctx.masks[0].expand(task_ids.shape[0], -1)  # domain: every output

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"outputs": self.outputs, "tasks": self.tasks}


def known_from(state: dict[str, Any] | None) -> Known | None:
    return None if state is None else Known(state["outputs"], state["tasks"])


def prediction_loss(ctx: Context, outputs: torch.Tensor, y: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    """The loss on labelled data: cross-entropy over the active outputs, or for a regression
    target the mean squared error of the single output (in the target's model units)."""
    if ctx.protocol.regression is not None:
        return F.mse_loss(outputs[:, 0], y)
    return F.cross_entropy(masked(outputs, mask), y)


def soft_target_loss(ctx: Context, student: torch.Tensor, teacher: torch.Tensor,
                     temperature: float, t_squared: bool = True) -> torch.Tensor:
    """Distillation toward a teacher's (masked) outputs: softened cross-entropy for classes,
    the squared difference of the predictions for a regression target."""
    if ctx.protocol.regression is not None:
        return F.mse_loss(student[:, 0], teacher[:, 0])
    return distillation_loss(student, teacher, temperature, t_squared)


class Regulariser:
    """A parameter penalty with task-boundary hooks (EWC, online EWC, SI)."""

    name = "regulariser"
    # Whether it can consolidate on a stream every few iterations, without task data.
    boundary_free = False

    def setup(self, ctx: Context) -> None:
        """Called once after the model is built."""

    def before_task(self, ctx: Context) -> None:
        """Called before training on ``ctx.task``."""

    def penalty(self, ctx: Context) -> torch.Tensor | None:
        """Added to the loss each step; ``None`` when there is nothing to add yet."""
        return None

    def after_step(self, ctx: Context) -> None:
        """Called after every optimiser step (SI integrates its path here)."""

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        """Called after training on ``ctx.task`` with that task's training data."""

    def consolidate(self, ctx: Context) -> None:
        """On a stream, every few iterations: what ``after_task`` then ``before_task`` do."""
        raise NotImplementedError(f"{self.name} needs task boundaries")

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class Method:
    """Base strategy: plain fine-tuning with optional regularisers (the "None" baseline)."""

    name = "none"
    # Whether the method can learn from a task-free stream (with its regularisers' consent).
    boundary_free = True
    # On a stream: draw from every context reached so far, not from the stream's mix (Joint).
    stream_draws_everything_seen = False
    # On a stream: iterations between consolidations, and the current batch's weight against
    # replay (None: see MethodConfig.stream_current_weight). build_method sets both.
    consolidate_every = 100
    stream_current_weight: float | None = None

    def __init__(self, regularisers: list[Regulariser] | None = None) -> None:
        self.regularisers: list[Regulariser] = list(regularisers or [])

    @property
    def runs_without_boundaries(self) -> bool:
        return self.boundary_free and all(reg.boundary_free for reg in self.regularisers)

    # -- model and optimiser ------------------------------------------------------------
    def build_model(self, ctx: Context) -> nn.Module:
        from birram.models.mlp import Classifier

        return Classifier(ctx.protocol.input_shape, ctx.protocol.n_outputs,
                          list(ctx.settings.hidden))

    def make_optimizer(self, ctx: Context) -> torch.optim.Optimizer:
        params = [p for p in ctx.model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=ctx.settings.lr, betas=ctx.settings.betas)

    def setup(self, ctx: Context) -> None:
        for reg in self.regularisers:
            reg.setup(ctx)

    # -- task boundaries ----------------------------------------------------------------
    def before_task(self, ctx: Context) -> None:
        for reg in self.regularisers:
            reg.before_task(ctx)

    def training_set(self, ctx: Context) -> TrainingSet:
        """The data the loop draws batches from while training ``ctx.task``."""
        task = ctx.protocol.tasks[ctx.task]
        ids = torch.full_like(task.y_train, ctx.task)
        return TrainingSet(task.x_train, task.y_train, ids)

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        for reg in self.regularisers:
            reg.after_task(ctx, data)

    # -- a task-free stream (no boundary hook above is ever called) ----------------------
    def start_stream(self, ctx: Context) -> None:
        """Called once, before the first iteration of a stream (not again on resume)."""
        for reg in self.regularisers:
            reg.before_task(ctx)

    def observe(self, ctx: Context, batch: Batch) -> None:
        """Called on a stream after every step with the batch just trained on."""

    def consolidate(self, ctx: Context) -> None:
        """Called on a stream every ``consolidate_every`` iterations."""
        for reg in self.regularisers:
            reg.consolidate(ctx)

    def current_weight(self, ctx: Context, batch: Batch) -> float | torch.Tensor:
        """Weight of the current batch's loss against the replayed one's (which gets 1 - it)."""
        if ctx.stream is None:
            # Current and replayed data weighted 1/t and 1 - 1/t after t tasks (van de Ven 2020).
            return 1.0 / ctx.tasks_seen
        if self.stream_current_weight is not None:
            return self.stream_current_weight
        if ctx.protocol.scenario != "class":
            return 0.5
        present = torch.zeros_like(ctx.stream.seen_outputs).index_fill_(0, batch.y, True)
        return present.sum() / ctx.stream.seen_outputs.sum()

    # -- each step ------------------------------------------------------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "current_loss" in cls.__dict__:  # it would be bypassed by loss()
            raise TypeError(f"{cls.__name__}: override current() (returning a CurrentLoss), "
                            "not current_loss()")

    def current(self, ctx: Context, batch: Batch) -> CurrentLoss:
        """The loss on the current batch, with what the rest of the step may reuse."""
        logits = ctx.model(batch.x)
        loss = prediction_loss(ctx, logits, batch.y, batch.mask)
        return CurrentLoss(loss, {"loss_current": loss.detach()}, logits=logits)

    def current_loss(self, ctx: Context, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        """The loss on the current batch and its logs (:meth:`current` without the rest)."""
        current = self.current(ctx, batch)
        return current.loss, current.logs

    def replay_loss(self, ctx: Context, batch: Batch,
                    current: CurrentLoss | None = None) -> ReplayLoss | None:
        """Loss on replayed data; ``None`` when the method does not replay (yet). ``current``:
        what :meth:`current` computed on ``batch`` this step, if it ran."""
        return None

    def loss(self, ctx: Context, batch: Batch) -> tuple[torch.Tensor, dict]:
        return self.total_loss(ctx, batch, self.current(ctx, batch))

    def total_loss(self, ctx: Context, batch: Batch, current: CurrentLoss,
                   weights: tuple[float | torch.Tensor, float | torch.Tensor] | None = None,
                   ) -> tuple[torch.Tensor, dict]:
        """The step's loss: the current and replayed losses weighted (by ``weights``, or
        :meth:`current_weight` and its complement), summed over stacked seeds, plus every
        regulariser's penalty."""
        loss, logs = current.loss, current.logs
        replay = (current.replay if current.replay is not None
                  else self.replay_loss(ctx, batch, current))
        if replay is not None:
            if weights is None:
                w = self.current_weight(ctx, batch)
                weights = (w, 1.0 - w)
            loss = weights[0] * loss + weights[1] * replay[0]
            logs.update(replay[1])
        loss = ctx.rows.loss_sum(loss)  # stacked seeds: each seed's own data loss
        for reg in self.regularisers:
            penalty = reg.penalty(ctx)
            if penalty is not None:
                loss = loss + penalty
                logs[f"penalty_{reg.name}"] = penalty.detach()
        return loss, logs

    def before_step(self, ctx: Context) -> None:
        """Called between ``loss.backward()`` and ``optimizer.step()``: the gradients are in
        each parameter's ``.grad`` and may be changed in place (A-GEM projects them here)."""

    def after_step(self, ctx: Context) -> None:
        for reg in self.regularisers:
            reg.after_step(ctx)

    def eager_step(self) -> None:
        """Train with the eager step from here on, dropping a compiled one (if any)."""

    def compile_step(self, ctx: Context) -> None:
        """Compile the training step (``train.compile``); methods that can, override this."""
        raise ConfigError(f"method {self.name} has no compiled training step; leave out "
                          "--compile (train.compile)")

    # -- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, ctx: Context, x: torch.Tensor) -> torch.Tensor:
        """Scores for every output unit (the loop applies the evaluation mask)."""
        return ctx.model(x)

    # -- seeds trained together (birram.train_seeds) ----------------------------------------
    def seed_modules(self) -> dict[str, nn.Module]:
        """Trained modules the method holds besides ``ctx.model`` (stacked with it)."""
        return {}

    def set_seed_module(self, name: str, module: nn.Module, ctx: Context) -> None:
        """Replace the module :meth:`seed_modules` names ``name`` (by its stacked form)."""
        raise KeyError(name)

    def stack_seeds(self, ctx: Context) -> None:
        """After ``ctx.model`` and :meth:`seed_modules` became stacked: set up what reads them."""
        for reg in self.regularisers:
            reg.setup(ctx)

    # -- resume ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"regularisers": [reg.state_dict() for reg in self.regularisers]}

    def load_state_dict(self, state: dict[str, Any], ctx: Context) -> None:
        """Restore what :meth:`state_dict` returned; ``ctx.model`` is already built."""
        for reg, reg_state in zip(self.regularisers, state["regularisers"]):
            reg.load_state_dict(reg_state)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A detached, eval-mode snapshot of ``model`` (the "previous model" of replay methods)."""
    snapshot = copy.deepcopy(model).eval()
    for p in snapshot.parameters():
        p.requires_grad_(False)
    return snapshot


class PreviousModel:
    """A frozen snapshot of a model as it was after the last task (on a stream: at the last
    consolidation), the teacher or replay source of LwF, iCaRL and generative replay.

    Checkpointed under ``key`` in the method's state (the snapshot's ``state_dict``, or ``None``
    before the first snapshot) and, with ``known``, what a stream had shown it under ``"known"``
    (absent on task protocols).
    """

    def __init__(self, key: str = "previous", with_known: bool = True) -> None:
        self.key, self.with_known = key, with_known
        self.model: nn.Module | None = None
        self.known: Known | None = None  # on a stream: what the snapshot had been shown

    def take(self, ctx: Context, model: nn.Module) -> None:
        """Snapshot ``model`` as it is now (and, on a stream, what it has been shown)."""
        self.model = frozen_copy(model)
        if self.with_known and ctx.stream is not None:
            self.known = Known.now(ctx)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            self.key: None if self.model is None else self.model.state_dict()}
        if self.with_known and self.known is not None:
            state["known"] = self.known.state_dict()
        return state

    def load(self, state: dict[str, Any], like: nn.Module) -> None:
        """Restore what :meth:`state_dict` wrote into ``state``; ``like`` is a module of the
        snapshot's architecture (the live model it was taken from)."""
        self.model = None
        if state[self.key] is not None:
            self.model = frozen_copy(like)
            self.model.load_state_dict(state[self.key])
        if self.with_known:
            self.known = known_from(state.get("known"))
