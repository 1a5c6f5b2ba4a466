"""The results of a training run, as files: one (method, seed), and an experiment's summary.

What a finished (method, seed) directory holds besides its model (``RESULT_FILES``), how a
stored result is read back (validated: a damaged result is a DataError, never a wrong table),
and the per-method summary over seeds that the report turns into tables and figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birram import io
from birram.config import RunConfig
from birram.errors import DataError
from birram.metrics import mean_and_standard_error, summarise

# What a finished (method, seed) directory must hold; manifest.json seals their digests.
RESULT_FILES = ["config.json", "metrics.json", "accuracy_matrix.csv", "confusion.csv"]
MAE_FILE = "mae_matrix.csv"  # regression targets: MAE (decades) on task j after task i


@dataclass
class SeedResult:
    method: str
    seed: int
    accuracy_matrix: np.ndarray
    random_init: np.ndarray
    metrics: dict[str, Any]
    wall_seconds: float
    iterations_per_second: float
    confusion: np.ndarray  # C[true, predicted] over every test set after the last task


def load_seed_result(run_dir: Path, n_tasks: int) -> SeedResult:
    """A sealed result, validated: shapes, ranges and finite numbers, or a DataError."""
    fix = f"delete {run_dir} to recompute this result"
    try:
        cfg = io.read_json_strict(run_dir / "config.json")
        m = io.read_json_strict(run_dir / "metrics.json")
        confusion = np.loadtxt(run_dir / "confusion.csv", delimiter=",", skiprows=1,
                               dtype=np.int64, ndmin=2)[:, 1:]
        r = np.array(m["accuracy_matrix"], dtype=float)
        b = np.array(m["random_init_accuracies"], dtype=float)
        if r.shape != (n_tasks, n_tasks) or b.shape != (n_tasks,):
            raise ValueError(f"accuracy matrix of shape {r.shape}, expected {(n_tasks, n_tasks)}")
        if not (np.isfinite(r).all() and ((r >= 0) & (r <= 1)).all()):
            raise ValueError("accuracies outside [0, 1]")
        # Derived figures recomputed, never trusted.
        m.update(summarise(r, b, fwt_defined=cfg["scenario"] != "class").to_dict())
        if "regression" in m:
            check_regression_metrics(m["regression"], n_tasks)
        result = SeedResult(cfg["method_name"], cfg["seed"], r, b, m, float(m["wall_seconds"]),
                            float(m["iterations_per_second"] or float("nan")), confusion)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise DataError(f"result in {run_dir} is unusable ({err}); {fix}") from None
    return result


def check_regression_metrics(reg: dict[str, Any], n_tasks: int) -> None:
    """A stored regression summary: square MAE matrix of finite, non-negative decades."""
    mae = np.array(reg["mae_matrix"], dtype=float)
    if mae.shape != (n_tasks, n_tasks) or not (np.isfinite(mae).all() and (mae >= 0).all()):
        raise ValueError(f"MAE matrix of shape {mae.shape} or with values that are not finite "
                         "non-negative numbers")
    curve = np.array(reg["mae_seen_after_each_task"], dtype=float)
    if curve.shape != (n_tasks,) or not np.isfinite(curve).all() or reg["mae"] != curve[-1]:
        raise ValueError("MAE curve does not fit the MAE after the last task")


def matrix_csv(r: np.ndarray, fmt: str = "{:.6f}", rows: str = "after_task",
               columns: str = "task_", first: int = 1) -> str:
    header = f"{rows}," + ",".join(f"{columns}{j + first}" for j in range(r.shape[1]))
    lines = [f"{i + first}," + ",".join(fmt.format(v) for v in row) for i, row in enumerate(r)]
    return "\n".join([header, *lines]) + "\n"


def summarise_experiment(cfg: RunConfig, results: list[SeedResult]) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    for name in cfg.methods:
        rows = [r for r in results if r.method == name]
        final = [r.metrics["average_accuracy"] for r in rows]
        curves = np.array([r.metrics["average_accuracy_after_each_task"] for r in rows])
        mean, se = mean_and_standard_error(final)
        methods[name] = {
            "average_accuracy_mean": mean,
            "average_accuracy_se": se,
            "per_seed": dict(zip([r.seed for r in rows], final)),
            "curve_mean": curves.mean(0).tolist(),
            # One seed has no standard error: None (null in JSON), never NaN.
            "curve_se": (curves.std(0, ddof=1) / np.sqrt(len(rows))).tolist()
            if len(rows) > 1 else [None] * curves.shape[1],
            "bwt_mean": float(np.mean([r.metrics["bwt"] for r in rows])),
            "forgetting_mean": float(np.mean([r.metrics["forgetting"] for r in rows])),
            # None (null) in class-IL, where forward transfer is not defined.
            "fwt_mean": None if any(r.metrics["fwt"] is None for r in rows)
            else float(np.mean([r.metrics["fwt"] for r in rows])),
            "wall_seconds_mean": float(np.mean([r.wall_seconds for r in rows])),
            "iterations_per_second_mean": float(np.mean([r.iterations_per_second for r in rows])),
        }
        if cfg.target != "class":
            methods[name].update(regression_summary(rows))
    summary = {"protocol": cfg.data.protocol, "scenario": cfg.scenario, "seeds": cfg.seeds,
               "iters_per_task": cfg.train.iters, "methods": methods}
    if cfg.target != "class":
        summary["target"] = cfg.target
    return summary


def regression_summary(rows: list[SeedResult]) -> dict[str, Any]:
    """Mean and standard error over seeds of the regression scores after the last task."""
    regs = [r.metrics["regression"] for r in rows]
    mae, mae_se = mean_and_standard_error([g["mae"] for g in regs])
    r2 = [g["r2"] for g in regs if g["r2"] is not None]
    curves = np.array([g["mae_seen_after_each_task"] for g in regs])
    return {"mae_mean": mae, "mae_se": None if np.isnan(mae_se) else mae_se,
            "r2_mean": float(np.mean(r2)) if r2 else None,
            "mae_per_seed": dict(zip([r.seed for r in rows], [g["mae"] for g in regs])),
            "mae_curve_mean": curves.mean(0).tolist()}
