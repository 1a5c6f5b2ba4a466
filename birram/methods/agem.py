"""A-GEM (Chaudhry et al. 2019): keep the loss on a memory of past samples from rising.

Each step the gradient of the current loss ``g`` is compared with the gradient ``g_ref`` of the
loss on a batch drawn from a class-balanced memory; when they conflict (``g . g_ref < 0``) the
update is projected onto the half-space where the memory loss does not increase to first order:
``g <- g - (g . g_ref / g_ref . g_ref) g_ref``. The memory is never trained on directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from birram.methods.base import Context, masked
from birram.methods.memory import SampleMemoryMethod


def project_gradient(grad: torch.Tensor, grad_ref: torch.Tensor) -> torch.Tensor:
    """``grad`` unchanged when it agrees with ``grad_ref``, else its projection orthogonal to it.

    Branch-free (no host synchronisation): ``min(g . g_ref, 0)`` is zero when they agree, and a
    zero ``g_ref`` leaves ``grad`` as it is.
    """
    conflict = torch.clamp(torch.dot(grad, grad_ref), max=0.0)
    length = torch.dot(grad_ref, grad_ref).clamp_min(torch.finfo(grad_ref.dtype).tiny)
    return grad - (conflict / length) * grad_ref


class AGEM(SampleMemoryMethod):
    name = "agem"

    def before_step(self, ctx: Context) -> None:
        if len(self.buffer) == 0:
            return
        params = [p for p in ctx.model.parameters() if p.requires_grad]
        x, y, task_ids = self.buffer.sample(ctx.settings.batch_size, ctx.generator)
        ref_loss = F.cross_entropy(masked(ctx.model(x), ctx.sample_mask(task_ids)), y)
        grads_ref = torch.autograd.grad(ref_loss, params, allow_unused=True)
        grad = flatten([p.grad for p in params], params)
        grad_ref = flatten(list(grads_ref), params)
        projected = project_gradient(grad, grad_ref)
        offset = 0
        for p in params:
            n = p.numel()
            if p.grad is not None:
                p.grad.copy_(projected[offset:offset + n].view_as(p))
            offset += n


def flatten(grads: list[torch.Tensor | None], params: list[torch.nn.Parameter]) -> torch.Tensor:
    """One vector of all gradients; a parameter without a gradient contributes zeros."""
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                      for g, p in zip(grads, params)])
