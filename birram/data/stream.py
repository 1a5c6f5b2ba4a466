"""Task-free streams: the protocol's contexts presented as one stream of batches, with no task
boundary told to the method.

Each context (task) owns a share of ``iters_per_context`` iterations of the stream, in task
order. In the ``fuzzy`` mode (the reference code's ``FuzzyBoundaryStream``,
GMvandeVen/continual-learning, ``data/labelstream.py``) every sample of a batch draws its context
independently: inside a share it comes from that context, and over a window of
``transition_iters`` iterations centred on each boundary the probability of the next context
ramps linearly from 0 to 1 while that of the current one falls from 1 to 0. The ramps are
symmetric, so each context keeps exactly one share of the stream, and a window no wider than a
share means at most two contexts ever mix. ``transition_iters = 0`` gives sharp transitions
(still untold). In the ``random`` mode (the reference's ``RandomStream``) every sample comes from
a uniformly drawn context throughout.

Unlike the reference, the first context is not split between the start and the end of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from birram.errors import ConfigError

StreamMode = Literal["fuzzy", "random"]


@dataclass(frozen=True)
class StreamSpec:
    """How a protocol is presented as a stream (iterations per context come from training)."""

    transition_iters: int = 500
    mode: StreamMode = "fuzzy"


@dataclass(frozen=True)
class StreamSchedule:
    """Which context each sample of iteration ``it`` (0-based) is drawn from."""

    n_contexts: int
    iters_per_context: int
    transition_iters: int
    mode: StreamMode = "fuzzy"

    def __post_init__(self) -> None:
        if self.mode not in ("fuzzy", "random"):
            raise ConfigError(f"stream mode {self.mode!r}; allowed: fuzzy, random")
        if self.transition_iters < 0 or self.transition_iters > self.iters_per_context:
            raise ConfigError(
                f"stream transition_iters={self.transition_iters} must lie in [0, iterations per "
                f"context = {self.iters_per_context}], so that at most two contexts mix; lower "
                f"data.stream.transition_iters or raise --iters")

    @property
    def total_iters(self) -> int:
        return self.n_contexts * self.iters_per_context

    def probabilities(self, it: int) -> torch.Tensor:
        """``[n_contexts]`` probabilities of drawing each context at iteration ``it``."""
        probs = torch.zeros(self.n_contexts)
        if self.mode == "random":
            return probs.fill_(1.0 / self.n_contexts)
        share, window = self.iters_per_context, self.transition_iters
        k = min(it // share, self.n_contexts - 1)
        # Position of the iteration's midpoint relative to the nearest boundary before or after.
        centre = it + 0.5
        if window > 0 and k + 1 < self.n_contexts and centre > (k + 1) * share - window / 2:
            up = (centre - ((k + 1) * share - window / 2)) / window  # toward context k + 1
            probs[k], probs[k + 1] = 1.0 - up, up
        elif window > 0 and k > 0 and centre < k * share + window / 2:
            up = (centre - (k * share - window / 2)) / window  # still leaving context k - 1
            probs[k - 1], probs[k] = 1.0 - up, up
        else:
            probs[k] = 1.0
        return probs

    def reached(self, it: int) -> torch.Tensor:
        """``[n_contexts]`` bool: contexts with a non-zero probability at some iteration <= it."""
        if self.mode == "random":
            return torch.ones(self.n_contexts, dtype=torch.bool)
        window = self.transition_iters
        starts = torch.arange(self.n_contexts) * self.iters_per_context - window / 2
        starts[0] = 0.0
        return it + 0.5 > starts

    def draw(self, it: int, n: int, generator: torch.Generator,
             cumulative: bool = False) -> torch.Tensor:
        """The context of each of ``n`` samples at iteration ``it``; with ``cumulative``,
        uniformly over every context the stream has reached (all data seen so far: Joint)."""
        probs = self.reached(it).float() if cumulative else self.probabilities(it)
        return torch.multinomial(probs, n, replacement=True, generator=generator)


class StreamSampler:
    """Batches of a stream: each context is visited in shuffled passes, like the reference's
    one data loader per context; samples are indices into the concatenated training sets."""

    def __init__(self, schedule: StreamSchedule, sizes: list[int], batch_size: int,
                 generator: torch.Generator, cumulative: bool = False) -> None:
        self.schedule, self.batch_size = schedule, batch_size
        self.generator, self.cumulative = generator, cumulative
        self.sizes = sizes
        self.offsets = torch.cumsum(torch.tensor([0, *sizes[:-1]]), 0)
        self._orders = [torch.empty(0, dtype=torch.long) for _ in sizes]
        self._pos = [0] * len(sizes)

    def _take(self, k: int, m: int) -> torch.Tensor:
        out = []
        while m > 0:
            if self._pos[k] >= self._orders[k].numel():
                self._orders[k] = torch.randperm(self.sizes[k], generator=self.generator)
                self._pos[k] = 0
            part = self._orders[k][self._pos[k]: self._pos[k] + m]
            self._pos[k] += part.numel()
            m -= part.numel()
            out.append(part + self.offsets[k])
        return torch.cat(out)

    def next_indices(self, it: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices into the concatenated training set, context of each)`` for iteration it."""
        contexts = self.schedule.draw(it, self.batch_size, self.generator, self.cumulative)
        contexts, _ = contexts.sort()
        counts = torch.bincount(contexts, minlength=len(self.sizes)).tolist()
        idx = torch.cat([self._take(k, m) for k, m in enumerate(counts) if m > 0])
        return idx, contexts  # grouped by context: nothing reads a batch's order
