"""XdG, context-dependent gating (Masse et al. 2018): a fixed random subset of hidden units
per task, chosen by the sample's task both in training and at test time (task-IL only).

The gates follow each sample's task id and nothing happens at a boundary, so it runs on a
task-incremental stream too, where every sample's context is told (as in the authors'
task-free code); a class- or domain-incremental stream tells no context and is refused."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from birram.methods.base import Batch, Context, CurrentLoss, Method, masked
from birram.methods.task_identity import require_task_identity
from birram.models.task_gated import TaskGatedClassifier


class XdG(Method):
    """Plain XdG; regularisers (EWC, SI) given to the constructor add their penalties."""

    name = "xdg"

    def __init__(self, gate_prop: float = 0.9, independent_gates: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate_prop, self.independent_gates = gate_prop, independent_gates

    def build_model(self, ctx: Context) -> nn.Module:
        require_task_identity(self.name, ctx)
        return TaskGatedClassifier(ctx.protocol.input_shape, ctx.protocol.n_outputs,
                                   list(ctx.settings.hidden), ctx.protocol.n_tasks,
                                   self.gate_prop, ctx.generator, self.independent_gates)

    def current(self, ctx: Context, batch: Batch) -> CurrentLoss:
        logits = ctx.model(batch.x, batch.task_ids)
        loss = F.cross_entropy(masked(logits, batch.mask), batch.y)
        return CurrentLoss(loss, {"loss_current": loss.detach()}, logits=logits)

    @torch.no_grad()
    def predict(self, ctx: Context, x: torch.Tensor) -> torch.Tensor:
        # The loop masks the scores to the tested task's own output units, so each task's units
        # are scored by a pass through that task's gates: one pass per task.
        scores = torch.empty(x.shape[0], ctx.protocol.n_outputs, device=x.device)
        for task in ctx.protocol.tasks:
            ids = torch.full((x.shape[0],), task.index, dtype=torch.long, device=x.device)
            outputs = torch.tensor(task.outputs, dtype=torch.long, device=x.device)
            scores[:, outputs] = ctx.model(x, ids)[:, outputs]
        return scores
