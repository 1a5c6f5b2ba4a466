"""Several seeds trained as one stacked model: the row layout and the per-seed random draws.

With S seeds, every tensor of per-sample rows that reaches a model is *seed-major*: S equal
blocks, block s holding seed s's rows (see :mod:`birram.models.stacked`). Each seed keeps its
own generator, and every random draw is made per seed from that generator with the shape a
single-seed run would draw, so seed s draws exactly the numbers its own run draws. With one
seed every helper reduces to the plain tensor operation it stands for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

Drawn = TypeVar("Drawn", torch.Tensor, tuple[torch.Tensor, ...])


class SeedRows:
    """The generators of the seeds trained together, and the operations on seed-major rows."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        if not generators:
            raise ValueError("SeedRows needs at least one generator")
        self.generators = list(generators)

    @property
    def n(self) -> int:
        return len(self.generators)

    def per_seed(self, rows: int) -> int:
        """Rows of each seed in a seed-major tensor of ``rows`` rows."""
        if rows % self.n:
            raise ValueError(f"{rows} rows cannot be split between {self.n} seeds")
        return rows // self.n

    # -- draws ------------------------------------------------------------------------------
    def draw(self, fn: Callable[[torch.Generator], Drawn]) -> Drawn:
        """``fn(generator)`` for each seed, results (a tensor or a tuple of tensors of rows)
        concatenated seed-major."""
        if self.n == 1:
            return fn(self.generators[0])
        outs = [fn(g) for g in self.generators]
        if isinstance(outs[0], tuple):
            return tuple(torch.cat(parts) for parts in zip(*outs))  # type: ignore[return-value]
        return torch.cat(outs)  # type: ignore[arg-type]

    def randn_like(self, t: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like the seed-major ``t``, on ``t``'s device."""
        rows = self.per_seed(t.shape[0])
        return self.draw(lambda g: torch.randn(rows, *t.shape[1:], generator=g)).to(t.device)

    def randn(self, rows: int, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """``rows`` standard normal rows per seed."""
        return self.draw(lambda g: torch.randn(rows, *shape, generator=g)).to(device)

    def subset(self, n: int, k: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Indices of ``k`` rows drawn without replacement from each seed's ``n`` rows of a
        seed-major tensor (seed s's block starts at row ``s * n``)."""
        local = self.draw(lambda g: torch.randperm(n, generator=g)[:k])
        offsets = torch.arange(self.n).repeat_interleave(k) * n
        return (local + offsets).to(device)

    # -- layout -----------------------------------------------------------------------------
    def blocks(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` viewed as ``[S, rows per seed, ...]``."""
        return t.reshape(self.n, self.per_seed(t.shape[0]), *t.shape[1:])

    def cat(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Seed-major tensors joined row-wise, seed by seed (``torch.cat`` for one seed)."""
        if self.n == 1:
            return torch.cat(list(tensors))
        joined = torch.cat([self.blocks(t) for t in tensors], dim=1)
        return joined.flatten(0, 1)

    def head(self, t: torch.Tensor, k: int) -> torch.Tensor:
        """Each seed's first ``k`` rows (``t[:k]`` for one seed)."""
        if self.n == 1:
            return t[:k]
        return self.blocks(t)[:, :k].flatten(0, 1)

    def tail(self, t: torch.Tensor, k: int) -> torch.Tensor:
        """Each seed's rows after the first ``k`` (``t[k:]`` for one seed)."""
        if self.n == 1:
            return t[k:]
        return self.blocks(t)[:, k:].flatten(0, 1)

    def loss_sum(self, mean_loss: torch.Tensor) -> torch.Tensor:
        """The sum over seeds of each seed's own mean loss, from the mean over all rows: each
        seed's parameters then get exactly the gradient of its own run."""
        return mean_loss if self.n == 1 else mean_loss * self.n


class NoGenerator:
    """Stands in for ``Context.generator`` of a stacked run: torch refuses it as a generator,
    so a draw that bypasses :class:`SeedRows` fails instead of using the wrong stream."""

    def __repr__(self) -> str:
        return "NoGenerator (draw through ctx.rows)"
