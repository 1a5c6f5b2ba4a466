"""Published regularisation strengths of EWC and SI."""

from __future__ import annotations

from typing import Literal

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
    return SPLIT_MNIST_STRENGTH[method][scenario]
