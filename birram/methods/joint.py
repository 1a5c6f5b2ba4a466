"""Joint training on all data seen so far: the upper bound, not a continual method."""

from __future__ import annotations

import torch

from birram.methods.base import Context, Method, TrainingSet


class Joint(Method):
    name = "joint"
    # On a stream: every sample drawn from all the contexts the stream has reached so far.
    stream_draws_everything_seen = True

    def training_set(self, ctx: Context) -> TrainingSet:
        tasks = ctx.protocol.tasks[: ctx.task + 1]
        x = torch.cat([t.x_train for t in tasks])
        y = torch.cat([t.y_train for t in tasks])
        ids = torch.cat([torch.full_like(t.y_train, t.index) for t in tasks])
        return TrainingSet(x, y, ids)
