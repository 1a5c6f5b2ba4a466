"""Memories of stored samples: class-balanced (Experience Replay, A-GEM, iCaRL exemplars) and
reservoir-sampled (the same methods on a stream)."""

from __future__ import annotations

from typing import Any

import torch


class StoredSamples:
    """Samples with their labels and task ids, drawn from uniformly with replacement."""

    def __init__(self) -> None:
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.task_ids: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.y is None else int(self.y.shape[0])

    def sample(self, n: int, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        assert self.x is not None and self.y is not None and self.task_ids is not None
        idx = torch.randint(0, len(self), (n,), generator=generator).to(self.x.device)
        return self.x[idx], self.y[idx], self.task_ids[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "task_ids": self.task_ids}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.x, self.y, self.task_ids = state["x"], state["y"], state["task_ids"]


class ClassBalancedBuffer(StoredSamples):
    """Holds at most ``per_class`` samples of every class seen, with each sample's task id."""

    def __init__(self, per_class: int) -> None:
        if per_class < 1:
            raise ValueError(f"per_class={per_class} must be at least 1")
        super().__init__()
        self.per_class = per_class

    def add(self, x: torch.Tensor, y: torch.Tensor, task_ids: torch.Tensor,
            generator: torch.Generator) -> None:
        """Store a random selection of up to ``per_class`` samples of each class in ``y``."""
        keep = []
        for c in torch.unique(y).tolist():
            idx = (y == c).nonzero().squeeze(1)
            order = torch.randperm(idx.numel(), generator=generator).to(idx.device)
            keep.append(idx[order[: self.per_class]])
        self.extend(x, y, task_ids, torch.cat(keep))

    def extend(self, x: torch.Tensor, y: torch.Tensor, task_ids: torch.Tensor,
               idx: torch.Tensor) -> None:
        """Append the chosen samples ``idx`` (selection is the caller's: random or herding)."""
        parts = [(x[idx], y[idx], task_ids[idx])]
        if self.x is not None:
            parts.insert(0, (self.x, self.y, self.task_ids))
        self.x = torch.cat([p[0] for p in parts])
        self.y = torch.cat([p[1] for p in parts])
        self.task_ids = torch.cat([p[2] for p in parts])


class ReservoirBuffer(StoredSamples):
    """A memory of at most ``budget`` samples filled by reservoir sampling (for streams, where
    no boundary says when to store): after ``n`` samples, each is held with probability
    ``budget / n``, as the reference's task-free buffer (``memory_buffer_stream.py``)."""

    def __init__(self, budget: int) -> None:
        if budget < 1:
            raise ValueError(f"budget={budget} must be at least 1")
        super().__init__()
        self.budget = budget
        self.seen = 0  # samples offered so far

    def __len__(self) -> int:
        return min(self.seen, self.budget)

    def add(self, x: torch.Tensor, y: torch.Tensor, task_ids: torch.Tensor,
            generator: torch.Generator) -> None:
        """Offer every sample of a batch, in order (one vectorised pass)."""
        n = x.shape[0]
        if self.x is None:
            self.x = x.new_zeros((self.budget, *x.shape[1:]))
            self.y = y.new_zeros(self.budget)
            self.task_ids = task_ids.new_zeros(self.budget)
        assert self.y is not None and self.task_ids is not None
        position = torch.arange(self.seen, self.seen + n)  # each sample's 0-based arrival index
        draw = (torch.rand(n, generator=generator) * (position + 1)).long()  # in [0, position]
        slot = torch.where(position < self.budget, position, draw)
        keep = slot < self.budget
        # Several samples of one batch may pick the same slot: the last one wins, as if added
        # one after another.
        order = torch.arange(n)
        winner = torch.full((self.budget,), -1, dtype=torch.long).scatter_reduce(
            0, slot[keep], order[keep], reduce="amax")
        chosen = keep & (winner[slot.clamp(max=self.budget - 1)] == order)
        src = order[chosen].to(x.device)
        dst = slot[chosen].to(x.device)
        self.x[dst], self.y[dst], self.task_ids[dst] = x[src], y[src], task_ids[src]
        self.seen += n

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.seen = int(state["seen"])
