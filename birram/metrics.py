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
    # None where it measures nothing: in class-IL a task's classes are masked until it arrives,
    # so its accuracy just before is that of its masked outputs (zero), whatever was learned.
    fwt: float | None
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


def summarise(r: np.ndarray, random_init: np.ndarray, fwt_defined: bool = True) -> Summary:
    """The figures of ``r``; ``fwt_defined=False`` (class-IL) reports no forward transfer."""
    r = check_matrix(r)
    after_each = average_accuracy_after_each_task(r)
    return Summary(
        average_accuracy=float(after_each[-1]),
        average_accuracy_after_each_task=[float(a) for a in after_each],
        bwt=backward_transfer(r),
        fwt=forward_transfer(r, random_init) if fwt_defined else None,
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


# -- regression targets ----------------------------------------------------------------------

def mean_absolute_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean ``|predicted - truth|`` (in the targets' unit: decades for log10 I_CC)."""
    p, t = np.asarray(predicted, dtype=float), np.asarray(truth, dtype=float)
    if p.shape != t.shape or p.size == 0:
        raise ValueError(f"predictions {p.shape} and targets {t.shape} must match and be "
                         "non-empty")
    return float(np.abs(p - t).mean())


def r_squared(predicted: np.ndarray, truth: np.ndarray) -> float | None:
    """Coefficient of determination ``1 - SS_res / SS_tot``; None where the targets do not
    vary (SS_tot = 0), so it is undefined. Negative when worse than predicting the mean."""
    p, t = np.asarray(predicted, dtype=float), np.asarray(truth, dtype=float)
    mean_absolute_error(p, t)  # same shape checks
    total = float(((t - t.mean()) ** 2).sum())
    if total <= 1e-12 * max(1.0, float((t**2).sum())):
        return None
    return float(1.0 - ((p - t) ** 2).sum() / total)


@dataclass(frozen=True)
class RegressionSummary:
    """Regression scores of one run: ``mae_matrix[i][j]`` is the MAE on task j's test set after
    training task i (``r2_matrix`` likewise); the ``seen`` curves pool the test sets of tasks
    0..i after task i, and ``mae``/``r2`` pool every test set after the last task."""

    mae: float
    r2: float | None
    mae_seen_after_each_task: list[float]
    r2_seen_after_each_task: list[float | None]
    mae_matrix: list[list[float]]
    r2_matrix: list[list[float | None]]

    def to_dict(self) -> dict:
        return asdict(self)


def summarise_regression(records: list[dict]) -> RegressionSummary:
    """From the per-task regression records the training loop keeps (one dict per task with
    ``mae``, ``r2``, ``mae_seen`` and ``r2_seen``)."""
    if not records:
        raise ValueError("no regression records")
    return RegressionSummary(
        mae=float(records[-1]["mae_seen"]), r2=records[-1]["r2_seen"],
        mae_seen_after_each_task=[float(r["mae_seen"]) for r in records],
        r2_seen_after_each_task=[r["r2_seen"] for r in records],
        mae_matrix=[[float(v) for v in r["mae"]] for r in records],
        r2_matrix=[list(r["r2"]) for r in records])
