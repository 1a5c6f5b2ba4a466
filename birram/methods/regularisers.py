"""Parameter regularisers, EWC, online EWC and SI, with the Fisher estimation and helpers they
share, under one name. They live in :mod:`birram.methods.ewc`, :mod:`birram.methods.si`,
:mod:`birram.methods.fisher`, :mod:`birram.methods.parameters` and
:mod:`birram.methods.strengths`.
"""

from __future__ import annotations

from birram.methods.ewc import EWC, OnlineEWC
from birram.methods.fisher import (
    FISHER_LABELS,
    FisherBackend,
    FisherLabels,
    diagonal_fisher,
    linear_output_gradients,
    trainable_linear_layers,
)
from birram.methods.parameters import flat, flat_grad, trainable
from birram.methods.si import SI
from birram.methods.strengths import SPLIT_MNIST_STRENGTH, literature_strength

__all__ = ["EWC", "FISHER_LABELS", "SI", "SPLIT_MNIST_STRENGTH", "FisherBackend", "FisherLabels",
           "OnlineEWC", "diagonal_fisher", "flat", "flat_grad", "trainable_linear_layers",
           "linear_output_gradients", "literature_strength", "trainable"]
