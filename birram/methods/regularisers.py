"""Parameter regularisers: EWC (Kirkpatrick et al. 2017), online EWC (Schwarz et al. 2018) and
SI (Zenke, Poole & Ganguli 2017), following van de Ven's reference implementations
(GMvandeVen/continual-learning, GMvandeVen/brain-inspired-replay).

Only parameters with ``requires_grad`` are regularised (a frozen extractor is excluded). State is
held as flat vectors over those parameters, so each penalty is a few fused vector operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from birram.errors import ConfigError
from birram.methods.base import Context, Regulariser, TrainingSet, masked
from birram.models.stacked import NotStackable, SeedLinear
from birram.seeds import SeedRows

FisherLabels = Literal["all", "sample", "pred", "true"]
FISHER_LABELS: tuple[str, ...] = ("all", "sample", "pred", "true")

# Regularisation strengths found by grid search for split MNIST (5 tasks, MLP 2x400, Adam lr 1e-3,
# 2000 iterations of batch 128), per scenario: GMvandeVen/continual-learning, param_values.py
# (van de Ven, Tuytelaars & Tolias 2022, "Three types of incremental learning"). They are tuned
# for this exact penalty form (EWC: lambda/2 * sum F (theta - theta*)^2 with F the mean per-sample
# Fisher; SI: c * sum Omega (theta - theta*)^2), so they carry over to split Fashion-MNIST as a
# starting point. Online EWC (gamma = 1) uses the EWC values.
SPLIT_MNIST_STRENGTH: dict[str, dict[str, float]] = {
    "ewc": {"task": 1e5, "domain": 1e10, "class": 1e9},
    "si": {"task": 10.0, "domain": 5e4, "class": 5e3},
}


def literature_strength(method: Literal["ewc", "si"], scenario: str) -> float:
    """The published split-MNIST strength of ``method`` for ``scenario`` (see the table above)."""
    return SPLIT_MNIST_STRENGTH[method][scenario]


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def flat(params: list[nn.Parameter]) -> torch.Tensor:
    """The parameters as one vector (differentiable, so a penalty on it backpropagates)."""
    return torch.cat([p.reshape(-1) for p in params])


def flat_grad(params: list[nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in params])


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
    layers = _linear_layers(model)
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


def _linear_layers(model: nn.Module) -> list[nn.Module] | None:
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
        if ctx.rows.n > 1 and _linear_layers(ctx.model) is None:
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


class SI(Regulariser):
    """Synaptic intelligence: a path-integral importance per parameter.

    During a task, ``W += -g * (theta_after - theta_before)`` after every optimiser step, where
    ``g`` is the gradient that step used. As in the BI-R code (``train.py``), ``g`` is the gradient
    of the total loss, penalty included: what ``p.grad`` holds after ``optimizer.step()``. After
    the task ``Omega += W / (delta^2 + epsilon)`` with ``delta`` the parameter change over the task.
    Penalty: ``strength * sum_i Omega_i (theta_i - theta*_i)^2`` with ``theta*`` the parameters at
    the end of the last task. ``strength=None`` takes the published split-MNIST value; epsilon 0.1
    is the reference default.

    ``scope="encoder-classifier"`` (for BI-R's feedback VAE) puts the penalty on the encoder and
    the classifier head only, as the BI-R paper's ``train.py`` does (its path integral ``W`` is
    accumulated over ``convE``, ``fcE`` and ``classifier`` alone, so every other parameter keeps
    a zero importance); ``"all"`` covers every trainable parameter.
    """

    name = "si"
    boundary_free = True  # on a stream, "online" SI: the importance is updated every N steps

    def __init__(self, strength: float | None = None, epsilon: float = 0.1,
                 scope: Literal["all", "encoder-classifier"] = "all") -> None:
        if strength is not None and strength < 0:
            raise ValueError(f"strength={strength} must be non-negative")
        if epsilon <= 0:
            raise ValueError(f"epsilon={epsilon} must be positive")
        self.requested_strength = strength
        self.strength = 0.0 if strength is None else float(strength)
        self.epsilon = epsilon
        if scope not in ("all", "encoder-classifier"):
            raise ValueError(f"scope={scope!r}; allowed: all, encoder-classifier")
        self.scope = scope
        self.params: list[nn.Parameter] = []
        self.omega: torch.Tensor | None = None  # importance, summed over finished tasks
        self.anchor: torch.Tensor | None = None  # parameters at the end of the last task
        self.path: torch.Tensor | None = None  # W: running path integral of the current task
        self.previous: torch.Tensor | None = None  # parameters before the latest step

    def setup(self, ctx: Context) -> None:
        self.params = self._scoped(ctx.model)
        if self.requested_strength is None:
            self.strength = literature_strength("si", ctx.protocol.scenario)
        self.anchor = flat(self.params).detach().clone()

    def before_task(self, ctx: Context) -> None:
        current = flat(self.params).detach()
        self.path = torch.zeros_like(current)
        self.previous = current.clone()

    def _scoped(self, model: nn.Module) -> list[nn.Parameter]:
        if self.scope == "all":
            return trainable(model)
        head, body = getattr(model, "head", None), getattr(model, "body", None)
        if head is None or body is None or not hasattr(model, "decoder_out"):
            raise ConfigError("SI scope 'encoder-classifier' needs BI-R's feedback model (a VAE "
                              "with a classifier head); use method.bir_si_params='all'")
        return trainable(body) + trainable(head)

    def penalty(self, ctx: Context) -> torch.Tensor | None:
        if self.omega is None:
            return None
        diff = flat(self.params) - self.anchor
        return self.strength * (self.omega * diff * diff).sum()

    @torch.no_grad()
    def after_step(self, ctx: Context) -> None:
        assert self.path is not None and self.previous is not None, "before_task not called"
        current = flat(self.params)
        self.path.addcmul_(flat_grad(self.params), current - self.previous, value=-1.0)
        self.previous.copy_(current)

    @torch.no_grad()
    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        assert self.path is not None and self.anchor is not None
        current = flat(self.params).detach().clone()
        change = current - self.anchor
        added = self.path / (change * change + self.epsilon)
        self.omega = added if self.omega is None else self.omega + added
        self.anchor = current

    def consolidate(self, ctx: Context) -> None:
        # As the reference's task-free mode (train_stream.py: update_omega every update_every
        # iterations): close the path integral since the last consolidation and start anew.
        self.after_task(ctx, None)  # type: ignore[arg-type]  # SI does not read the task data
        self.before_task(ctx)

    def state_dict(self) -> dict[str, Any]:
        return {"strength": self.strength, "epsilon": self.epsilon, "omega": self.omega,
                "anchor": self.anchor, "path": self.path, "previous": self.previous}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strength, self.epsilon = state["strength"], state["epsilon"]
        self.omega, self.anchor = state["omega"], state["anchor"]
        self.path, self.previous = state["path"], state["previous"]
