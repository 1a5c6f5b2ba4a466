"""The diagonal Fisher information of a classifier (or regression) model: EWC's importance
weights, and the per-sample gradients FROMP builds on.

Two exact backends: one batched backward pass for models whose trainable parameters all sit in
linear layers (``"linear"``), per-sample gradients from ``torch.func`` for any other (``"vmap"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from birram.methods.base import masked
from birram.methods.parameters import trainable
from birram.models.stacked import NotStackable, SeedLinear
from birram.seeds import SeedRows

FisherLabels = Literal["all", "sample", "pred", "true"]
FISHER_LABELS: tuple[str, ...] = ("all", "sample", "pred", "true")

FisherBackend = Literal["auto", "linear", "vmap"]


def diagonal_fisher(
    model: nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    labels: FisherLabels = "all",
    y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk: int | None = None,
    backend: FisherBackend = "auto",
    regression: bool = False,
    rows: SeedRows | None = None,
) -> torch.Tensor:
    """Mean over samples of the squared per-sample gradient of the log-likelihood, as one vector
    over the trainable parameters (in ``model.parameters()`` order).

    ``mask`` (bool ``[N, n_outputs]``) restricts the softmax to each sample's active outputs.
    ``labels`` chooses the label(s) whose log-likelihood is differentiated, as in van de Ven's
    ``estimate_fisher``: ``"all"`` every active label weighted by its predicted probability (the
    exact Fisher of the model's predictive distribution, the reference default), ``"sample"`` one
    label drawn from it, ``"pred"`` the most probable label, ``"true"`` the data label (the
    "empirical" Fisher).

    Two exact backends: ``"vmap"`` takes per-sample gradients with ``torch.func`` (any model
    without cross-sample coupling in eval mode); ``"linear"``, for models whose trainable
    parameters all sit in ``nn.Linear`` layers applied once to ``[B, features]`` inputs, sums
    squared per-sample gradients as ``(delta^2)^T (a^2)`` from one batched backward pass, without
    materialising any per-sample gradient (far faster on CPU). ``"auto"`` picks ``"linear"`` when
    it applies.

    ``regression``: the model's single output is the mean of a unit-variance Gaussian over the
    target (in its model units), whose Fisher is the mean squared gradient of that output;
    ``labels`` is then irrelevant.

    ``rows``: for a stacked model (:mod:`birram.models.stacked`), the seeds whose seed-major
    samples ``x`` holds; each seed's Fisher is the mean over its own samples, taken in the
    chunks its own run would take, and only the ``"linear"`` backend applies.
    """
    if labels not in FISHER_LABELS:
        raise ValueError(f"labels={labels!r}; allowed: {', '.join(FISHER_LABELS)}")
    if labels == "true" and y is None:
        raise ValueError("labels='true' needs the data labels y")
    layers = trainable_linear_layers(model)
    if backend == "linear" and layers is None:
        raise ValueError("backend='linear' needs every trainable parameter in an nn.Linear")
    use_linear = backend == "linear" or (backend == "auto" and layers is not None)
    seeds = 1 if rows is None else rows.n
    if seeds > 1 and not use_linear:
        raise NotStackable("the Fisher of stacked seeds needs every trainable parameter in a "
                           "linear layer")
    per_seed = x.shape[0] // seeds

    def rows_of(t: torch.Tensor, start: int, step: int) -> torch.Tensor:
        if seeds == 1:
            return t[start : start + step]
        return t.reshape(seeds, per_seed, *t.shape[1:])[:, start : start + step].flatten(0, 1)

    was_training = model.training
    model.eval()
    try:
        if use_linear:
            assert layers is not None
            accumulate, result = _linear_accumulator(model, layers, regression)
        else:
            accumulate, result = _vmap_accumulator(model, regression)
        step = chunk or (1024 if use_linear else 64)
        for start in range(0, per_seed, step):
            xb, mb = rows_of(x, start, step), rows_of(mask, start, step)
            yb = None if y is None else rows_of(y, start, step)
            plan = ([(torch.zeros(xb.shape[0], dtype=torch.long, device=xb.device),
                      torch.ones(xb.shape[0], device=xb.device))] if regression
                    else _label_plan(model, xb, mb, labels, yb, generator, rows))
            for label, weight in plan:
                accumulate(xb, mb, label, weight)
    finally:
        model.train(was_training)
    return result() / max(per_seed, 1)


Accumulate = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]


def _label_plan(model: nn.Module, xb: torch.Tensor, mb: torch.Tensor, labels: FisherLabels,
                yb: torch.Tensor | None, generator: torch.Generator | None,
                rows: SeedRows | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (label, weight) pairs whose weighted squared gradients make up the chunk's Fisher."""
    with torch.no_grad():
        probs = F.softmax(masked(model(xb), mb), 1)
    n = xb.shape[0]
    if labels == "all":
        # One gradient per active output unit, weighted by its predicted probability.
        return [(torch.full((n,), c, dtype=torch.long, device=xb.device), probs[:, c] * mb[:, c])
                for c in mb.any(0).nonzero().squeeze(1).tolist()]
    if labels == "true":
        assert yb is not None
        label = yb
    elif labels == "pred":
        label = probs.argmax(1)
    elif rows is not None and rows.n > 1:  # "sample", each seed from its own generator
        per_seed = iter(rows.blocks(probs.cpu()))
        label = rows.draw(lambda g: torch.multinomial(next(per_seed), 1, generator=g))
        label = label.squeeze(1).to(xb.device)
    else:  # "sample"
        label = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(xb.device)
    return [(label, torch.ones(n, device=xb.device))]


def _weighted_nll(logits: torch.Tensor, mask: torch.Tensor, label: torch.Tensor,
                  weight: torch.Tensor, regression: bool = False) -> torch.Tensor:
    """Sum of ``sqrt(weight) * nll``: squared per-sample gradients then carry the weight once.
    For a regression output the summed output itself: the gradient of the Gaussian negative
    log-likelihood is the output's gradient times a unit-variance residual."""
    if regression:
        return (weight.sqrt() * logits[..., 0]).sum()
    log_probs = F.log_softmax(masked(logits, mask), dim=-1)
    nll = -log_probs.gather(-1, label.unsqueeze(-1)).squeeze(-1)
    return (weight.sqrt() * nll).sum()


def trainable_linear_layers(model: nn.Module) -> list[nn.Module] | None:
    """The linear layers holding every trainable parameter, or ``None`` if some lie elsewhere."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, SeedLinear))
              and any(p.requires_grad for p in m.parameters(recurse=False))]
    covered = {id(p) for m in layers for p in m.parameters(recurse=False) if p.requires_grad}
    wanted = {id(p) for p in trainable(model)}
    return layers if covered == wanted else None


def linear_output_gradients(model: nn.Module, layers: list[nn.Module], x: torch.Tensor,
                            objective: Callable[[torch.Tensor], torch.Tensor],
                            misuse: Exception) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """For each of ``layers``, its input and the gradient of ``objective(model(x))`` (a scalar)
    w.r.t. its output. Nothing couples samples, so both are per sample: the per-sample gradient
    of a weight is ``d_i a_i^T`` and of a bias ``d_i``. ``misuse`` is raised when a layer runs
    twice or on inputs that are not ``[batch, features]``."""
    seen: dict[nn.Linear, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if layer in seen or inputs[0].dim() != 2:
            raise misuse
        seen[layer] = (inputs[0].detach(), output)  # type: ignore[index]

    handles = [layer.register_forward_hook(keep) for layer in layers]
    try:
        with torch.enable_grad():
            value = objective(model(x))
            grads = torch.autograd.grad(value, [seen[m][1] for m in layers], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    return [(seen[m][0], g) for m, g in zip(layers, grads)]


def _linear_accumulator(model: nn.Module, layers: list[nn.Module], regression: bool = False
                        ) -> tuple[Accumulate, Callable[[], torch.Tensor]]:
    total = {id(p): torch.zeros_like(p) for p in trainable(model)}

    def accumulate(xb: torch.Tensor, mb: torch.Tensor, label: torch.Tensor,
                   weight: torch.Tensor) -> None:
        rows = linear_output_gradients(
            model, layers, xb, lambda logits: _weighted_nll(logits, mb, label, weight, regression),
            ValueError("backend='linear' needs each layer applied once to [B, F] inputs"))
        for layer, (a, delta) in zip(layers, rows):
            if delta is None:
                continue
            d2, a2 = delta.square(), a.square()
            if isinstance(layer, SeedLinear):  # each seed's rows into its own weights
                d2 = d2.reshape(layer.seeds, -1, d2.shape[-1])
                a2 = a2.reshape(layer.seeds, -1, a2.shape[-1])
                if layer.weight.requires_grad:
                    total[id(layer.weight)] += torch.bmm(d2.transpose(1, 2), a2)
                if layer.bias is not None and layer.bias.requires_grad:
                    total[id(layer.bias)] += d2.sum(1)
                continue
            if layer.weight.requires_grad:
                total[id(layer.weight)] += d2.T @ a2
            if layer.bias is not None and layer.bias.requires_grad:
                total[id(layer.bias)] += d2.sum(0)

    def result() -> torch.Tensor:
        return torch.cat([total[id(p)].reshape(-1) for p in trainable(model)])

    return accumulate, result


def _vmap_accumulator(model: nn.Module, regression: bool = False
                      ) -> tuple[Accumulate, Callable[[], torch.Tensor]]:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    rest = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    rest.update(dict(model.named_buffers()))
    total = {n: torch.zeros_like(v) for n, v in params.items()}

    def one(p: dict[str, torch.Tensor], xi: torch.Tensor, mi: torch.Tensor, label: torch.Tensor,
            weight: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, {**p, **rest}, (xi.unsqueeze(0),))[0]
        return _weighted_nll(logits, mi, label, weight, regression)

    per_sample = vmap(grad(one), in_dims=(None, 0, 0, 0, 0))

    def accumulate(xb: torch.Tensor, mb: torch.Tensor, label: torch.Tensor,
                   weight: torch.Tensor) -> None:
        grads = per_sample(params, xb, mb, label, weight)
        for n in names:  # a handful of parameter tensors
            g = grads[n].reshape(xb.shape[0], -1)
            # a batched dot product: sums the squares without materialising them
            total[n] += torch.einsum("bi,bi->i", g, g).view_as(total[n])

    def result() -> torch.Tensor:
        return torch.cat([total[n].reshape(-1) for n in names])

    return accumulate, result
