"""Elastic weight consolidation: EWC (Kirkpatrick et al. 2017) and online EWC (Schwarz et al.
2018), following van de Ven's reference implementations (GMvandeVen/continual-learning,
GMvandeVen/brain-inspired-replay).

Only parameters with ``requires_grad`` are regularised (a frozen extractor is excluded). State is
held as flat vectors over those parameters, so each penalty is a few fused vector operations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from birram.methods.base import Context, Regulariser, TrainingSet
from birram.methods.fisher import (
    FISHER_LABELS,
    FisherLabels,
    diagonal_fisher,
    trainable_linear_layers,
)
from birram.methods.parameters import flat, trainable
from birram.methods.strengths import literature_strength
from birram.models.stacked import NotStackable


class _FisherPenalty(Regulariser):
    """Shared machinery of EWC and online EWC: Fisher estimation after each task."""

    method_key = "ewc"

    def __init__(self, strength: float | None, fisher_samples: int | None,
                 fisher_labels: FisherLabels, chunk: int | None) -> None:
        if strength is not None and strength < 0:
            raise ValueError(f"strength={strength} must be non-negative")
        if fisher_samples is not None and fisher_samples < 1:
            raise ValueError(f"fisher_samples={fisher_samples} must be at least 1 (or None)")
        if fisher_labels not in FISHER_LABELS:
            raise ValueError(f"fisher_labels={fisher_labels!r}; "
                             f"allowed: {', '.join(FISHER_LABELS)}")
        self.requested_strength = strength
        self.strength = 0.0 if strength is None else float(strength)
        self.fisher_samples = fisher_samples
        self.fisher_labels: FisherLabels = fisher_labels
        self.chunk = chunk
        self.params: list[nn.Parameter] = []

    def setup(self, ctx: Context) -> None:
        self.params = trainable(ctx.model)
        if ctx.rows.n > 1 and trainable_linear_layers(ctx.model) is None:
            raise NotStackable(f"{self.name} on stacked seeds needs every trainable parameter "
                               "in a linear layer")
        if self.requested_strength is None:
            self.strength = literature_strength(self.method_key, ctx.protocol.scenario)  # type: ignore[arg-type]

    def estimate(self, ctx: Context, data: TrainingSet) -> torch.Tensor:
        """Fisher of the task just trained, on (a random subset of) its training data."""
        x, y, task_ids = data.x, data.y, data.task_ids
        n = ctx.rows.per_seed(x.shape[0])  # stacked seeds: each seed's own samples
        if self.fisher_samples is not None and self.fisher_samples < n:
            idx = ctx.rows.subset(n, self.fisher_samples, x.device)
            x, y, task_ids = x[idx], y[idx], task_ids[idx]
        return diagonal_fisher(ctx.model, x, ctx.sample_mask(task_ids), self.fisher_labels, y,
                               ctx.generator, self.chunk,
                               regression=ctx.protocol.regression is not None, rows=ctx.rows)


class EWC(_FisherPenalty):
    """Elastic weight consolidation with one quadratic term per task (the original "offline" form).

    Penalty: ``strength / 2 * sum_t sum_i F_t,i (theta_i - theta*_t,i)^2``. The per-task Fishers and
    anchors are kept (``fishers``, ``anchors``); because a sum of quadratics is one quadratic, the
    penalty is evaluated from their merged precision ``A = sum_t F_t`` and centre
    ``c = sum_t F_t theta*_t / A`` (plus a constant): a step costs the same for any number of
    tasks.

    ``strength=None`` takes the published split-MNIST value for the run's scenario.
    ``fisher_samples=None`` uses every training sample of the task (continual-learning's default;
    the BI-R code uses 1000).
    """

    name = "ewc"

    def __init__(self, strength: float | None = None, fisher_samples: int | None = None,
                 fisher_labels: FisherLabels = "all", chunk: int | None = None) -> None:
        super().__init__(strength, fisher_samples, fisher_labels, chunk)
        self.fishers: list[torch.Tensor] = []
        self.anchors: list[torch.Tensor] = []
        self._merge()

    def _merge(self) -> None:
        if not self.fishers:
            self.precision = self.centre = self.constant = None
            return
        # float64 for the merge so the constant does not suffer from cancellation
        f = torch.stack(self.fishers).double()
        a = torch.stack(self.anchors).double()
        precision = f.sum(0)
        weighted = (f * a).sum(0)
        centre = torch.where(precision > 0, weighted / precision.clamp_min(1e-300), a[-1])
        constant = (f * a * a).sum() - (precision * centre * centre).sum()
        dtype = self.fishers[0].dtype
        self.precision, self.centre = precision.to(dtype), centre.to(dtype)
        self.constant = constant.clamp_min(0).to(dtype)

    def penalty(self, ctx: Context) -> torch.Tensor | None:
        if self.precision is None:
            return None
        diff = flat(self.params) - self.centre
        return 0.5 * self.strength * ((self.precision * diff * diff).sum() + self.constant)

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        self.fishers.append(self.estimate(ctx, data))
        self.anchors.append(flat(self.params).detach().clone())
        self._merge()

    def state_dict(self) -> dict[str, Any]:
        return {"strength": self.strength, "fishers": list(self.fishers),
                "anchors": list(self.anchors)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strength = state["strength"]
        self.fishers, self.anchors = list(state["fishers"]), list(state["anchors"])
        self._merge()


class OnlineEWC(_FisherPenalty):
    """Online EWC: one running Fisher ``F <- F_task + gamma * F`` anchored at the latest task.

    Penalty: ``strength / 2 * gamma * sum_i F_i (theta_i - theta*_i)^2``: the decay is applied to
    the running sum once more in the penalty, exactly as in van de Ven's ``ewc_loss`` (so with
    ``gamma = 1`` this is EWC with a single anchor).
    """

    name = "online_ewc"

    def __init__(self, strength: float | None = None, gamma: float = 1.0,
                 fisher_samples: int | None = None, fisher_labels: FisherLabels = "all",
                 chunk: int | None = None) -> None:
        super().__init__(strength, fisher_samples, fisher_labels, chunk)
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma={gamma} must be in (0, 1]")
        self.gamma = gamma
        self.fisher: torch.Tensor | None = None
        self.anchor: torch.Tensor | None = None

    def penalty(self, ctx: Context) -> torch.Tensor | None:
        if self.fisher is None:
            return None
        diff = flat(self.params) - self.anchor
        return 0.5 * self.strength * self.gamma * (self.fisher * diff * diff).sum()

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        fisher = self.estimate(ctx, data)
        self.fisher = fisher if self.fisher is None else fisher + self.gamma * self.fisher
        self.anchor = flat(self.params).detach().clone()

    def state_dict(self) -> dict[str, Any]:
        return {"strength": self.strength, "gamma": self.gamma, "fisher": self.fisher,
                "anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strength, self.gamma = state["strength"], state["gamma"]
        self.fisher, self.anchor = state["fisher"], state["anchor"]
