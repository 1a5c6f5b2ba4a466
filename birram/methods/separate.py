"""Separate networks: one small network per task, each trained only on its own task
(task-IL only; a baseline that cannot forget and cannot transfer)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from birram.methods.base import Batch, Context, CurrentLoss, Method, masked
from birram.methods.task_identity import require_task_identity
from birram.models.separate import SeparateNetworks


class SeparateNetworksMethod(Method):
    name = "separate-networks"
    boundary_free = False

    def build_model(self, ctx: Context) -> nn.Module:
        require_task_identity(self.name, ctx)
        return SeparateNetworks(ctx.protocol.input_shape, ctx.protocol.n_outputs,
                                list(ctx.settings.hidden),
                                [task.outputs for task in ctx.protocol.tasks])

    def current(self, ctx: Context, batch: Batch) -> CurrentLoss:
        # Only the current task's network runs, so every other network gets no gradient at all
        # (not a zero one, which Adam's momentum would still turn into a step).
        logits = ctx.model(batch.x, ctx.task)
        loss = F.cross_entropy(masked(logits, batch.mask), batch.y)
        return CurrentLoss(loss, {"loss_current": loss.detach()}, logits=logits)
