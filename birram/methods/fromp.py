"""FROMP (Pan et al., NeurIPS 2020): functional regularisation of memorable past.

After each task the samples of every new class whose predictions are least certain (largest
trace of the softmax Hessian, ``sum p (1 - p)``) are kept as memorable points, and a diagonal
Gauss-Newton estimate of the posterior precision (the Fisher, summed over every task's training
data) is accumulated. Before the next task, for every output function ``f`` the kernel
``K_f = J_f Sigma J_f^T + eps I`` of the memorable points' predicted probabilities is formed
(``J_f`` their Jacobian, ``Sigma = 1 / (Fisher + prior precision)``) and inverted. Each step then
adds ``tau / 2 * sum_f d_f^T K_f^-1 d_f`` on a batch of memorable points (``d_f`` the change of
their probabilities since the task ended), whose gradient ``tau J^T K^-1 d`` is the update of the
reference implementation (GMvandeVen/continual-learning, ``models/cl/fromp_optimizer.py``), and
clips the total gradient norm as it does.

Task-IL regularises each previous task through its own head; class- and domain-IL regularise all
memorable points together over the outputs active now, as the reference does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from birram.errors import ConfigError
from birram.methods.base import Context, Method, TrainingSet
from birram.methods.fisher import (
    diagonal_fisher,
    linear_output_gradients,
    trainable_linear_layers,
)
from birram.methods.parameters import trainable

# The reference's split-MNIST tau per scenario (params/param_values.py); 1 elsewhere.
SPLIT_MNIST_TAU: dict[str, float] = {"task": 0.01, "domain": 10.0, "class": 1000.0}
# Per-sample gradient entries materialised at once (floats), to bound memory on large networks.
JACOBIAN_BUDGET = 20_000_000


def memorable_scores(logits: torch.Tensor) -> torch.Tensor:
    """Trace of the softmax Hessian per sample: how uncertain, so how informative, it is."""
    p = F.softmax(logits, dim=1)
    return (p * (1 - p)).sum(1)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The linear layers holding every trainable parameter (per-sample gradients come from
    their inputs and output gradients, which also holds for crossbar layers on a chip)."""
    layers = trainable_linear_layers(model)
    if layers is None:
        raise ConfigError("fromp needs every trainable parameter in a linear layer (an MLP, "
                          "optionally on a frozen extractor)")
    return layers


def per_sample_rows(model: nn.Module, x: torch.Tensor, score: Callable[[torch.Tensor],
                    torch.Tensor]) -> tuple[list[nn.Linear], dict[nn.Linear, tuple[
                        torch.Tensor, torch.Tensor]]]:
    """For each linear layer, its inputs ``a`` [n, I] and the gradient ``d`` [n, O] of
    ``score(model(x))`` (one value per sample) w.r.t. its outputs: the per-sample gradient of
    the weight is ``d_i a_i^T`` and of the bias ``d_i``."""
    layers = linear_layers(model)
    rows = linear_output_gradients(
        model, layers, x, lambda logits: score(logits).sum(),
        ConfigError("fromp needs each linear layer applied once to [batch, features]"))
    return layers, {m: (a, d if d is not None else torch.zeros(a.shape[0], m.out_features,
                                                               dtype=a.dtype, device=a.device))
                    for m, (a, d) in zip(layers, rows)}


class FROMP(Method):
    name = "fromp"
    boundary_free = False  # picks its memorable past at each task boundary

    def __init__(self, tau: float | None = None, samples_per_class: int = 100,
                 prior_precision: float = 1e-3, grad_clip_norm: float | None = 1.0,
                 kernel_eps: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tau_setting = tau
        self.tau = 1.0 if tau is None else tau
        self.samples_per_class = samples_per_class
        self.prior_precision = prior_precision
        self.grad_clip_norm = grad_clip_norm
        self.kernel_eps = kernel_eps
        self.memory: dict[str, torch.Tensor] = {}  # x, y, task_ids of the memorable points
        self.fisher: torch.Tensor | None = None
        # Rebuilt before each task from the memory, the Fisher and the model as the task ended.
        self.groups: list[dict[str, torch.Tensor]] = []

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        if self.tau_setting is None:
            self.tau = SPLIT_MNIST_TAU[ctx.protocol.scenario]

    # -- task boundaries --------------------------------------------------------------------
    def before_task(self, ctx: Context) -> None:
        super().before_task(ctx)
        self.groups = []
        if ctx.task == 0 or not self.memory:
            return
        was_training = ctx.model.training
        ctx.model.eval()
        covariance = 1.0 / (self.fisher + self.prior_precision)
        mem_tasks = self.memory["task_ids"]
        if ctx.protocol.scenario == "task":
            groups = [(mem_tasks == t, ctx.masks[t]) for t in range(ctx.task)]
        else:
            groups = [(torch.ones_like(mem_tasks, dtype=torch.bool), ctx.masks[ctx.task])]
        for members, mask in groups:
            x = self.memory["x"][members]
            outputs = mask.nonzero().squeeze(1)
            with torch.no_grad():
                probs = F.softmax(ctx.model(x)[:, outputs], dim=1)
            kernel_inv = torch.stack([self._kernel_inverse(ctx, x, outputs, f, covariance)
                                      for f in range(outputs.numel())])
            self.groups.append({"x": x, "outputs": outputs, "probs": probs,
                                "kernel_inv": kernel_inv})
        ctx.model.train(was_training)

    def _kernel_inverse(self, ctx: Context, x: torch.Tensor, outputs: torch.Tensor, f: int,
                        covariance: torch.Tensor) -> torch.Tensor:
        """``(J_f Sigma J_f^T + eps I)^-1`` for output function ``f`` on the points ``x``."""
        layers, rows = per_sample_rows(
            ctx.model, x, lambda logits: F.softmax(logits[:, outputs], dim=1)[:, f])
        sigma = self._split(ctx, covariance)
        n = x.shape[0]
        # In float64: the kernel's eigenvalues span many decades (Sigma reaches 1 / prior
        # precision for parameters the data never moved), and float32 rounding alone would
        # leave it indefinite next to eps.
        kernel = self.kernel_eps * torch.eye(n, dtype=torch.float64, device=x.device)
        for layer in layers:
            a, d = (t.double() for t in rows[layer])
            if layer.weight.requires_grad:  # per-sample rows d_i a_i^T, a block of outputs at once
                cov_w = sigma[id(layer.weight)].double()
                step = max(1, JACOBIAN_BUDGET // max(1, n * a.shape[1]))
                for o in range(0, d.shape[1], step):
                    block = (d[:, o:o + step, None] * a[:, None, :]).reshape(n, -1)
                    kernel += (block * cov_w[o:o + step].reshape(-1)) @ block.T
            if layer.bias is not None and layer.bias.requires_grad:
                kernel += (d * sigma[id(layer.bias)].double()) @ d.T
        return torch.cholesky_inverse(torch.linalg.cholesky(kernel)).to(x.dtype)

    @staticmethod
    def _split(ctx: Context, vector: torch.Tensor) -> dict[int, torch.Tensor]:
        """A vector over the trainable parameters, as one tensor per parameter."""
        out, offset = {}, 0
        for p in trainable(ctx.model):
            out[id(p)] = vector[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        return out

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        super().after_task(ctx, data)
        was_training = ctx.model.training
        ctx.model.eval()
        outputs = ctx.masks[ctx.task].nonzero().squeeze(1)
        self._remember(ctx, data, outputs)
        if ctx.task + 1 < ctx.protocol.n_tasks:  # the Fisher is only needed by later tasks
            self._accumulate_fisher(ctx, data.x, outputs)
        ctx.model.train(was_training)

    @torch.no_grad()
    def _remember(self, ctx: Context, data: TrainingSet, outputs: torch.Tensor) -> None:
        batch = ctx.settings.eval_batch_size
        scores = torch.cat([memorable_scores(ctx.model(part)[:, outputs])
                            for part in data.x.split(batch)])
        keep = []
        for c in torch.unique(data.y).tolist():
            idx = (data.y == c).nonzero().squeeze(1)
            best = scores[idx].argsort(descending=True, stable=True)[: self.samples_per_class]
            keep.append(idx[best])
        idx = torch.cat(keep)
        for key, values in (("x", data.x), ("y", data.y), ("task_ids", data.task_ids)):
            chosen = values[idx]
            self.memory[key] = chosen if key not in self.memory else torch.cat(
                [self.memory[key], chosen])

    def _accumulate_fisher(self, ctx: Context, x: torch.Tensor, outputs: torch.Tensor) -> None:
        """Add ``sum_i diag(J_i^T H_i J_i)`` over the task's data, ``H`` the softmax Hessian of
        the active outputs: the exact Fisher of the predictive distribution (EWC's "all"
        labels), summed rather than averaged as the reference does."""
        mask = torch.zeros(ctx.masks.shape[1], dtype=torch.bool, device=ctx.device)
        mask[outputs] = True
        fisher = diagonal_fisher(ctx.model, x, mask.expand(x.shape[0], -1), labels="all")
        fisher = fisher * x.shape[0]
        self.fisher = fisher if self.fisher is None else self.fisher + fisher

    # -- each step ----------------------------------------------------------------------------
    def loss(self, ctx: Context, batch) -> tuple[torch.Tensor, dict]:
        loss, logs = super().loss(ctx, batch)
        if self.groups:
            penalty = self.functional_penalty(ctx, batch.x.shape[0])
            loss = loss + penalty
            logs["penalty_fromp"] = penalty.detach()
        return loss, logs

    def functional_penalty(self, ctx: Context, batch_size: int) -> torch.Tensor:
        """``tau / 2 * sum_f d_f^T K_f^-1 d_f`` on a random batch of memorable points per group."""
        per_group = math.ceil(batch_size / len(self.groups)) if len(self.groups) > 1 \
            else batch_size
        total = torch.zeros((), device=ctx.device)
        for group in self.groups:
            n = group["x"].shape[0]
            idx = (torch.randperm(n, generator=ctx.generator)[:per_group].to(ctx.device)
                   if per_group < n else torch.arange(n, device=ctx.device))
            probs = F.softmax(ctx.model(group["x"][idx])[:, group["outputs"]], dim=1)
            delta = (probs - group["probs"][idx]).T  # [k, m]
            kinv = group["kernel_inv"][:, idx][:, :, idx]  # [k, m, m]
            total = total + torch.einsum("fi,fij,fj->", delta, kinv, delta)
        return 0.5 * self.tau * total

    def before_step(self, ctx: Context) -> None:
        if self.grad_clip_norm is not None:
            nn.utils.clip_grad_norm_(trainable(ctx.model), self.grad_clip_norm)

    # -- resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "memory": dict(self.memory), "fisher": self.fisher}

    def load_state_dict(self, state: dict[str, Any], ctx: Context) -> None:
        super().load_state_dict(state, ctx)
        self.memory = dict(state["memory"])
        self.fisher = state["fisher"]
