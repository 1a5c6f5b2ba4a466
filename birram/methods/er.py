"""Experience Replay: rehearse a class-balanced buffer of stored samples with their labels."""

from __future__ import annotations

import torch.nn.functional as F

from birram.methods.base import Batch, Context, Method, TrainingSet, masked
from birram.methods.buffer import ClassBalancedBuffer, ReservoirBuffer


class ExperienceReplay(Method):
    name = "er"

    def __init__(self, samples_per_class: int = 100, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples_per_class = samples_per_class
        self.buffer: ClassBalancedBuffer | ReservoirBuffer = ClassBalancedBuffer(samples_per_class)

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        if ctx.protocol.stream is not None:  # the same memory, filled without boundaries
            self.buffer = ReservoirBuffer(self.samples_per_class * ctx.protocol.n_outputs)

    def observe(self, ctx: Context, batch: Batch) -> None:
        self.buffer.add(batch.x, batch.y, batch.task_ids, ctx.generator)

    def replay_loss(self, ctx: Context, batch: Batch):
        if len(self.buffer) == 0:
            return None
        x, y, task_ids = self.buffer.sample(batch.x.shape[0], ctx.generator)
        logits = masked(ctx.model(x), ctx.sample_mask(task_ids))
        loss = F.cross_entropy(logits, y)
        return loss, {"loss_replay": loss.detach()}

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        super().after_task(ctx, data)
        self.buffer.add(data.x, data.y, data.task_ids, ctx.generator)

    def state_dict(self):
        return {**super().state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state, ctx: Context) -> None:
        super().load_state_dict(state, ctx)
        self.buffer.load_state_dict(state["buffer"])
