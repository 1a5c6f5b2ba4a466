"""Methods that keep a memory of stored samples (ER, A-GEM): how the memory is filled and saved.

Between tasks the memory takes a class-balanced selection of each finished task; on a stream,
where no boundary says when to store, the same budget is filled by reservoir sampling from every
batch.
"""

from __future__ import annotations

from typing import Any

from birram.methods.base import Batch, Context, Method, TrainingSet
from birram.methods.buffer import ClassBalancedBuffer, ReservoirBuffer


class SampleMemoryMethod(Method):
    def __init__(self, samples_per_class: int = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.samples_per_class = samples_per_class
        self.buffer: ClassBalancedBuffer | ReservoirBuffer = ClassBalancedBuffer(samples_per_class)

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        if ctx.protocol.stream is not None:  # the same memory, filled without boundaries
            self.buffer = ReservoirBuffer(self.samples_per_class * ctx.protocol.n_outputs)

    def observe(self, ctx: Context, batch: Batch) -> None:
        self.buffer.add(batch.x, batch.y, batch.task_ids, ctx.generator)

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        super().after_task(ctx, data)
        self.buffer.add(data.x, data.y, data.task_ids, ctx.generator)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any], ctx: Context) -> None:
        super().load_state_dict(state, ctx)
        self.buffer.load_state_dict(state["buffer"])
