"""iCaRL (Rebuffi et al. 2017) as in van de Ven's implementation (GMvandeVen/continual-learning):
exemplars chosen by herding are added to the current task's training set, the loss is a binary
cross-entropy whose targets for old classes are the previous model's sigmoid outputs, and
classification is by the nearest mean of exemplars in L2-normalised feature space.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from birram.methods.base import (
    MASKED_LOGIT,
    Batch,
    Context,
    CurrentLoss,
    Method,
    PreviousModel,
    TrainingSet,
    one_hot,
)
from birram.methods.buffer import ClassBalancedBuffer


@torch.no_grad()
def herding(features: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of ``n`` samples whose running feature mean tracks the class mean most closely.

    ``features`` should already be L2-normalised. The k-th pick minimises
    ``|| mu - (sum of picked + f) / k ||``; a sample is never picked twice.
    """
    n = min(n, features.shape[0])
    mean = F.normalize(features.mean(0, keepdim=True), dim=1)
    picked = torch.zeros(features.shape[0], dtype=torch.bool, device=features.device)
    chosen = torch.empty(n, dtype=torch.long, device=features.device)
    running = torch.zeros_like(mean)
    for k in range(n):  # greedy, so sequential; each step is vectorised over candidates
        dist = ((running + features) / (k + 1) - mean).norm(dim=1)
        idx = dist.masked_fill(picked, float("inf")).argmin()
        chosen[k] = idx
        picked[idx] = True
        running += features[idx]
    return chosen


class ICaRL(Method):
    """Exemplar rehearsal with binary distillation and nearest-mean-of-exemplars prediction.

    Memory: ``samples_per_class`` exemplars per class (van de Ven's ``budget`` per class, 100 for
    split MNIST), or a total ``memory_budget`` split evenly over the classes seen so far, with
    older sets cut to their first (best) herding picks as in Rebuffi et al. (who use 2000).
    ``temperature`` divides the previous model's logits before the sigmoid, as in van de Ven's
    ``binaryCE_distill`` (its distillation temperature, default 2); Rebuffi et al. use 1.
    Distillation applies in the class-incremental scenario (as in the reference); in the task- and
    domain-incremental ones the exemplars are rehearsed with their labels.
    """

    name = "icarl"
    boundary_free = False

    def __init__(self, samples_per_class: int | None = 100, memory_budget: int | None = None,
                 temperature: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (samples_per_class is None) == (memory_budget is None):
            raise ValueError("give exactly one of samples_per_class and memory_budget")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be positive")
        self.samples_per_class = samples_per_class
        self.memory_budget = memory_budget
        self.temperature = temperature
        self.buffer = ClassBalancedBuffer(samples_per_class or 1)
        self.snapshot = PreviousModel()  # the model after the previous task (soft targets)
        self.class_means: torch.Tensor | None = None  # [n_outputs, features]; NaN where no exemplar

    @property
    def previous(self) -> torch.nn.Module | None:
        return self.snapshot.model

    # -- training ---------------------------------------------------------------------------
    def training_set(self, ctx: Context) -> TrainingSet:
        """The current task's data with the exemplars appended (van de Ven's ``add_buffer``)."""
        data = super().training_set(ctx)
        if len(self.buffer) == 0:
            return data
        assert self.buffer.x is not None and self.buffer.y is not None
        assert self.buffer.task_ids is not None
        return TrainingSet(torch.cat([data.x, self.buffer.x]), torch.cat([data.y, self.buffer.y]),
                           torch.cat([data.task_ids, self.buffer.task_ids]))

    def current(self, ctx: Context, batch: Batch) -> CurrentLoss:
        logits = ctx.model(batch.x)
        targets = one_hot(batch.y, logits.shape[1], logits.dtype)
        if self.previous is not None and ctx.protocol.scenario == "class":
            old = ctx.masks[ctx.task - 1]  # outputs of every earlier class
            with torch.no_grad():
                soft = torch.sigmoid(self.previous(batch.x) / self.temperature)
            targets = torch.where(old, soft, targets)
        per_output = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        # summed over the active outputs, averaged over the batch (as in the reference)
        loss = (per_output * batch.mask).sum(1).mean()
        return CurrentLoss(loss, {"loss_current": loss.detach()}, logits=logits)

    # -- task boundaries --------------------------------------------------------------------
    @torch.no_grad()
    def features(self, ctx: Context, x: torch.Tensor) -> torch.Tensor:
        out = [ctx.model.features(x[s : s + ctx.settings.eval_batch_size])
               for s in range(0, x.shape[0], ctx.settings.eval_batch_size)]
        return F.normalize(torch.cat(out), dim=1)

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        super().after_task(ctx, data)
        was_training = ctx.model.training
        ctx.model.eval()
        task = ctx.protocol.tasks[ctx.task]
        x, y = task.x_train, task.y_train
        ids = torch.full_like(y, ctx.task)
        classes = torch.unique(y).tolist()
        per_class = self._per_class(ctx, len(classes))
        self._shrink(per_class)
        keep = []
        for c in classes:
            idx = (y == c).nonzero().squeeze(1)
            keep.append(idx[herding(self.features(ctx, x[idx]), per_class)])
        self.buffer.extend(x, y, ids, torch.cat(keep))
        self.class_means = self._class_means(ctx)
        self.snapshot.take(ctx, ctx.model)
        ctx.model.train(was_training)

    def _per_class(self, ctx: Context, new_groups: int) -> int:
        if self.samples_per_class is not None:
            return self.samples_per_class
        assert self.memory_budget is not None
        return max(1, self.memory_budget // (self._n_groups() + new_groups))

    def _group_keys(self) -> torch.Tensor:
        # In domain-IL a label recurs in every task; a group is a (label, task) pair.
        assert self.buffer.y is not None and self.buffer.task_ids is not None
        return self.buffer.y * (int(self.buffer.task_ids.max()) + 1) + self.buffer.task_ids

    def _n_groups(self) -> int:
        return 0 if len(self.buffer) == 0 else int(torch.unique(self._group_keys()).numel())

    def _shrink(self, per_class: int) -> None:
        """Keep each stored group's first ``per_class`` exemplars (its best herding picks)."""
        if len(self.buffer) == 0:
            return
        keys = self._group_keys()
        order = torch.argsort(keys, stable=True)
        sorted_keys = keys[order]
        first = torch.searchsorted(sorted_keys, sorted_keys, side="left")
        rank = torch.arange(keys.numel(), device=keys.device) - first
        keep = torch.sort(order[rank < per_class]).values  # stored order, herding order kept
        shrunk = ClassBalancedBuffer(per_class)
        assert self.buffer.x is not None and self.buffer.y is not None
        assert self.buffer.task_ids is not None
        shrunk.extend(self.buffer.x, self.buffer.y, self.buffer.task_ids, keep)
        self.buffer = shrunk

    @torch.no_grad()
    def _class_means(self, ctx: Context) -> torch.Tensor:
        assert self.buffer.x is not None and self.buffer.y is not None
        feats = self.features(ctx, self.buffer.x)
        n_out = ctx.protocol.n_outputs
        sums = torch.zeros(n_out, feats.shape[1], device=feats.device)
        sums.index_add_(0, self.buffer.y, feats)
        counts = torch.bincount(self.buffer.y, minlength=n_out).unsqueeze(1)
        means = F.normalize(sums, dim=1)  # the mean's direction; its scale is irrelevant after
        return torch.where(counts > 0, means, torch.full_like(means, float("nan")))

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, ctx: Context, x: torch.Tensor) -> torch.Tensor:
        """Negative squared distance to each class's exemplar mean (the network's logits before
        any exemplars exist); outputs without exemplars get a masked score."""
        if self.class_means is None:
            return ctx.model(x)
        feats = F.normalize(ctx.model.features(x), dim=1)
        means = self.class_means.nan_to_num(0.0)
        # -|f - m|^2 expanded: one matrix product, and no size-dependent branch (cdist has one),
        # so the rule exports with a dynamic batch size.
        scores = (2 * feats @ means.T - feats.square().sum(1, keepdim=True)
                  - means.square().sum(1))
        missing = self.class_means.isnan().any(1)
        return scores.masked_fill(missing, MASKED_LOGIT)

    # -- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": self.buffer.state_dict(),
                "per_class": self.buffer.per_class, "class_means": self.class_means,
                **self.snapshot.state_dict()}

    def load_state_dict(self, state: dict[str, Any], ctx: Context) -> None:
        super().load_state_dict(state, ctx)
        self.buffer = ClassBalancedBuffer(state["per_class"])
        self.buffer.load_state_dict(state["buffer"])
        self.class_means = state["class_means"]
        self.snapshot.load(state, ctx.model)
