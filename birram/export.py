"""Export a trained model for inference on edge devices.

The exported program maps a batch of inputs to class scores over every output seen, with the
method's own prediction rule (iCaRL's nearest mean, BI-R's encoder and softmax head). It is a
``torch.export`` program (``.pt2``), loadable with ``torch.export.load`` and the input format
of ExecuTorch and other ahead-of-time runtimes; ONNX is written too when ``onnx`` is installed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from birram import io
from birram.methods.base import Context, Method


class InferenceModel(nn.Module):
    """``x -> scores``: the method's prediction, restricted to the outputs of the last task."""

    def __init__(self, method: Method, ctx: Context) -> None:
        super().__init__()
        self.method, self.ctx = method, ctx
        last = ctx.protocol.n_tasks - 1
        mask = ctx.protocol.eval_mask(last, last) if ctx.protocol.scenario != "task" else None
        self.register_buffer("allowed", mask if mask is not None
                             else torch.ones(ctx.protocol.n_outputs, dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.method.predict(self.ctx, x)
        return scores.masked_fill(~self.allowed, float("-inf"))


def export_model(method: Method, ctx: Context, path: Path) -> Path:
    """Write ``path`` (``.pt2``) and return it; the batch dimension stays dynamic."""
    model = InferenceModel(method, ctx).eval()
    example = ctx.protocol.tasks[0].x_test[:2].to(ctx.device)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    io.write_with(path, lambda f: torch.export.save(program, f))
    return path


def load_exported(path: Path) -> nn.Module:
    return torch.export.load(str(path)).module()
