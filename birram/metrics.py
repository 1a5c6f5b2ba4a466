"""Continual-learning metrics from the accuracy matrix ``R[i, j]``.

``R[i, j]`` is the test accuracy on task ``j`` after training on task ``i`` (0-based).
Definitions follow Lopez-Paz & Ranzato (2017) for BWT/FWT and Chaudhry et al. (2018) for
forgetting; averages are over the tasks seen so far.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    average_accuracy: float  # mean over all tasks after the last task
    average_accuracy_after_each_task: list[float]  # mean over tasks 0..i after task i
    bwt: float
    fwt: float
    forgetting: float

    def to_dict(self) -> dict:
        return asdict(self)


def check_matrix(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=float)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] == 0:
        raise ValueError(f"accuracy matrix must be square and non-empty, got shape {r.shape}")
    return r


def average_accuracy_after_each_task(r: np.ndarray) -> np.ndarray:
    r = check_matrix(r)
    return np.array([r[i, : i + 1].mean() for i in range(r.shape[0])])


def backward_transfer(r: np.ndarray) -> float:
    """Mean change on earlier tasks between learning them and the end (negative = forgetting)."""
    r = check_matrix(r)
    t = r.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean(r[-1, :-1] - np.diag(r)[:-1]))


def forward_transfer(r: np.ndarray, random_init: np.ndarray) -> float:
    """Mean accuracy on each task just before learning it, above a randomly initialised model."""
    r = check_matrix(r)
    b = np.asarray(random_init, dtype=float)
    t = r.shape[0]
    if b.shape != (t,):
        raise ValueError(f"random-init accuracies must have shape ({t},), got {b.shape}")
    if t < 2:
        return 0.0
    return float(np.mean([r[j - 1, j] - b[j] for j in range(1, t)]))


def forgetting(r: np.ndarray) -> float:
    """Mean over earlier tasks of (best accuracy ever reached before the end) - (final accuracy)."""
    r = check_matrix(r)
    t = r.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([r[j:-1, j].max() - r[-1, j] for j in range(t - 1)]))


def summarise(r: np.ndarray, random_init: np.ndarray) -> Summary:
    r = check_matrix(r)
    after_each = average_accuracy_after_each_task(r)
    return Summary(
        average_accuracy=float(after_each[-1]),
        average_accuracy_after_each_task=[float(a) for a in after_each],
        bwt=backward_transfer(r),
        fwt=forward_transfer(r, random_init),
        forgetting=forgetting(r),
    )


def per_class_accuracy(predicted: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """Accuracy for each true class (NaN for a class with no test samples)."""
    conf = confusion_matrix(predicted, truth, n_classes)
    totals = conf.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(conf) / totals, np.nan)


def confusion_matrix(predicted: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """``C[true, predicted]`` counts."""
    idx = np.asarray(truth, dtype=np.int64) * n_classes + np.asarray(predicted, dtype=np.int64)
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def mean_and_standard_error(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))
