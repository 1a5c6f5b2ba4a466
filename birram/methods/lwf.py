"""Learning without Forgetting (Li & Hoiem 2017): distil the previous model on current inputs."""

from __future__ import annotations

import torch

from birram.methods.base import (
    Batch,
    Context,
    CurrentLoss,
    Known,
    Method,
    PreviousModel,
    TrainingSet,
    distillation_loss,
    masked,
    soft_target_loss,
)


class LwF(Method):
    name = "lwf"

    def __init__(self, temperature: float = 2.0, t_squared: bool = True,
                 task_replay_heads: str = "one", **kwargs) -> None:
        super().__init__(**kwargs)
        self.temperature, self.t_squared = temperature, t_squared
        self.task_replay_heads = task_replay_heads  # task-IL: "one" drawn head, or "all"
        self.snapshot = PreviousModel()  # the teacher: the model after the previous task

    @property
    def previous(self) -> torch.nn.Module | None:
        return self.snapshot.model

    @property
    def known(self) -> Known | None:
        """On a stream: what the previous model had been shown."""
        return self.snapshot.known

    def replay_loss(self, ctx: Context, batch: Batch, current: CurrentLoss | None = None):
        if self.previous is None:
            return None
        if ctx.protocol.scenario == "task" and self.task_replay_heads == "all":
            return self._every_head_loss(ctx, batch, current)
        if self.known is not None:  # a stream: the previous model's tasks and classes
            task_ids = batch.task_ids
            if ctx.protocol.scenario == "task":
                tasks = self.known.task_list
                pick = torch.randint(0, tasks.numel(), (batch.x.shape[0],), generator=ctx.generator)
                task_ids = tasks[pick].to(ctx.device)
            teacher_mask = self.known.teacher_mask(ctx, task_ids)
        elif ctx.protocol.scenario == "task":
            # Each replayed input is scored by one previous task's head, drawn at random: the
            # same expectation as averaging over every previous head, at the cost of one.
            n = ctx.rows.per_seed(batch.x.shape[0])
            task_ids = ctx.rows.draw(lambda gen: torch.randint(0, ctx.task, (n,), generator=gen))
            task_ids = task_ids.to(ctx.device)
            teacher_mask = ctx.masks[task_ids]
        else:
            task_ids = batch.task_ids
            teacher_mask = ctx.masks[ctx.task - 1].expand_as(batch.mask)
        with torch.no_grad():
            teacher = masked(self.previous(batch.x), teacher_mask)
        logits = self._student_logits(ctx, batch, current)
        student = masked(logits, ctx.sample_mask(task_ids))
        loss = soft_target_loss(ctx, student, teacher, self.temperature, self.t_squared)
        return loss, {"loss_replay": loss.detach()}

    @staticmethod
    def _student_logits(ctx: Context, batch: Batch, current: CurrentLoss | None) -> torch.Tensor:
        # The replayed inputs are the current ones: reuse the forward pass of the current loss.
        if current is not None and current.logits is not None:
            return current.logits
        return ctx.model(batch.x)

    def _every_head_loss(self, ctx: Context, batch: Batch, current: CurrentLoss | None):
        """Task-IL as both reference codebases: every input distilled on every previous head,
        the losses averaged over the heads."""
        assert self.previous is not None
        heads = range(ctx.task) if self.known is None else self.known.task_list.tolist()
        with torch.no_grad():
            teacher = self.previous(batch.x)
        logits = self._student_logits(ctx, batch, current)
        loss = torch.stack([
            distillation_loss(masked(logits, ctx.masks[h]), masked(teacher, ctx.masks[h]),
                              self.temperature, self.t_squared) for h in heads]).mean()
        return loss, {"loss_replay": loss.detach()}

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        super().after_task(ctx, data)
        self.snapshot.take(ctx, ctx.model)

    def consolidate(self, ctx: Context) -> None:
        super().consolidate(ctx)
        self.snapshot.take(ctx, ctx.model)

    def state_dict(self):
        return {**super().state_dict(), **self.snapshot.state_dict()}

    def load_state_dict(self, state, ctx: Context) -> None:
        super().load_state_dict(state, ctx)
        self.snapshot.load(state, ctx.model)
