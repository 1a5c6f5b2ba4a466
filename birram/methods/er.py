"""Experience Replay: rehearse a class-balanced buffer of stored samples with their labels."""

from __future__ import annotations

import torch.nn.functional as F

from birram.methods.base import Batch, Context, CurrentLoss, masked
from birram.methods.memory import SampleMemoryMethod


class ExperienceReplay(SampleMemoryMethod):
    name = "er"

    def replay_loss(self, ctx: Context, batch: Batch, current: CurrentLoss | None = None):
        if len(self.buffer) == 0:
            return None
        x, y, task_ids = self.buffer.sample(batch.x.shape[0], ctx.generator)
        logits = masked(ctx.model(x), ctx.sample_mask(task_ids))
        loss = F.cross_entropy(logits, y)
        return loss, {"loss_replay": loss.detach()}
