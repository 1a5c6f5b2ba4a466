"""Learning without Forgetting (Li & Hoiem 2017): distil the previous model on current inputs."""

from __future__ import annotations

import torch

from birram.methods.base import (
    Batch,
    Context,
    Method,
    TrainingSet,
    frozen_copy,
    masked,
    soft_target_loss,
)


class LwF(Method):
    name = "lwf"

    def __init__(self, temperature: float = 2.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.temperature = temperature
        self.previous: torch.nn.Module | None = None

    def replay_loss(self, ctx: Context, batch: Batch):
        if self.previous is None:
            return None
        if ctx.protocol.scenario == "task":
            # Each replayed input is scored by one previous task's head, drawn at random: the
            # same expectation as averaging over every previous head, at the cost of one.
            task_ids = torch.randint(0, ctx.task, (batch.x.shape[0],), generator=ctx.generator)
            task_ids = task_ids.to(ctx.device)
            teacher_mask = ctx.masks[task_ids]
        else:
            task_ids = batch.task_ids
            teacher_mask = ctx.masks[ctx.task - 1].expand_as(batch.mask)
        with torch.no_grad():
            teacher = masked(self.previous(batch.x), teacher_mask)
        # The replayed inputs are the current ones: reuse the forward pass of the current loss.
        logits = batch.logits if batch.logits is not None else ctx.model(batch.x)
        student = masked(logits, ctx.sample_mask(task_ids))
        loss = soft_target_loss(ctx, student, teacher, self.temperature)
        return loss, {"loss_replay": loss.detach()}

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        super().after_task(ctx, data)
        self.previous = frozen_copy(ctx.model)

    def state_dict(self):
        state = super().state_dict()
        state["previous"] = None if self.previous is None else self.previous.state_dict()
        return state

    def load_state_dict(self, state, ctx: Context) -> None:
        super().load_state_dict(state, ctx)
        if state["previous"] is not None:
            self.previous = frozen_copy(ctx.model)
            self.previous.load_state_dict(state["previous"])
