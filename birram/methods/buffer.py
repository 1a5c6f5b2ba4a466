"""A class-balanced memory of stored samples (Experience Replay, iCaRL exemplars)."""

from __future__ import annotations

from typing import Any

import torch


class ClassBalancedBuffer:
    """Holds at most ``per_class`` samples of every class seen, with each sample's task id."""

    def __init__(self, per_class: int) -> None:
        if per_class < 1:
            raise ValueError(f"per_class={per_class} must be at least 1")
        self.per_class = per_class
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.task_ids: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.y is None else int(self.y.shape[0])

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

    def sample(self, n: int, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        assert self.x is not None and self.y is not None and self.task_ids is not None
        idx = torch.randint(0, len(self), (n,), generator=generator).to(self.x.device)
        return self.x[idx], self.y[idx], self.task_ids[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "task_ids": self.task_ids}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.x, self.y, self.task_ids = state["x"], state["y"], state["task_ids"]
