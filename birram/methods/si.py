"""Synaptic intelligence (Zenke, Poole & Ganguli 2017), following van de Ven's reference
implementations (GMvandeVen/continual-learning, GMvandeVen/brain-inspired-replay).

Only parameters with ``requires_grad`` are regularised; state is held as flat vectors over them.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from birram.errors import ConfigError
from birram.methods.base import Context, Regulariser, TrainingSet
from birram.methods.parameters import flat, flat_grad, trainable
from birram.methods.strengths import literature_strength


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

