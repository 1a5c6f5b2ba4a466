"""Mirror each run into TensorBoard or MLflow, through the training loop's hooks.

The run directory stays the record of a run; a tracker only shows it as it happens: the resolved
configuration, the losses every ``track.log_every`` iterations, the accuracy on every task after
each task, the final metrics and the run's figures. TensorBoard writes into the run directory's
``tensorboard/`` folder; MLflow into its tracking URI (``track.uri``), one MLflow run per
(method, seed). Both are optional (``pip install birram[track]``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from birram.config import RunConfig
from birram.errors import ConfigError
from birram.methods.base import Context, Method
from birram.rundir import flat
from birram.train import LoopHooks

TENSORBOARD_DIR = "tensorboard"
MLFLOW_PARAM_CHARS = 500  # the shortest value length MLflow versions accept


class Backend(Protocol):
    def scalars(self, values: dict[str, float], step: int) -> None: ...
    def figure(self, path: Path) -> None: ...
    def close(self) -> None: ...


class TensorBoardBackend:
    def __init__(self, log_dir: Path, config: dict[str, Any]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ModuleNotFoundError:  # torch's writer needs the tensorboard package
            raise ConfigError("tracking with TensorBoard needs the tensorboard package: "
                              "pip install birram[track]") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```")

    def scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def figure(self, path: Path) -> None:
        import matplotlib.image

        image = matplotlib.image.imread(path)[..., :3]  # RGBA PNG, floats in [0, 1]
        self.writer.add_image(path.stem, image, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


class MLflowBackend:
    """One MLflow run, through the explicit client (no global active run)."""

    def __init__(self, uri: str | None, experiment: str, run_name: str,
                 params: dict[str, Any]) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ModuleNotFoundError:
            raise ConfigError("tracking with MLflow needs the mlflow package: "
                              "pip install birram[track]") from None
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = (found.experiment_id if found is not None
                         else self.client.create_experiment(experiment))
        self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        for key, value in params.items():
            self.client.log_param(self.run_id, key, str(value)[:MLFLOW_PARAM_CHARS])
        self.closed = False

    def scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.client.log_metric(self.run_id, key, value, step=step)

    def figure(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self) -> None:
        if not self.closed:
            self.client.set_terminated(self.run_id)
            self.closed = True


class Tracker(LoopHooks):
    """Losses every ``log_every`` iterations and accuracies after every task, to a backend."""

    def __init__(self, backend: Backend, log_every: int, iters_per_task: int) -> None:
        self.backend, self.log_every, self.iters_per_task = backend, log_every, iters_per_task
        self.closed = False

    def losses_logged(self, ctx: Context, iteration: int, losses: dict[str, float]) -> None:
        step = ctx.task * self.iters_per_task + iteration + 1  # iterations since the first task
        self.backend.scalars({f"loss/{k}": v for k, v in losses.items()}, step)

    def task_done(self, method: Method, ctx: Context, accuracies: list[float]) -> None:
        values = {f"accuracy/task_{j + 1}": a for j, a in enumerate(accuracies)}
        values["accuracy/average_so_far"] = float(np.mean(accuracies[: ctx.task + 1]))
        self.backend.scalars(values, ctx.task + 1)

    def finish(self, metrics: dict[str, Any], run_dir: Path) -> None:
        """The final figures and the run's figures (accuracy matrix, replayed samples)."""
        from birram import report

        r = np.array(metrics["accuracy_matrix"], dtype=float)
        final = {f"final/{k}": float(metrics[k]) for k in ("average_accuracy", "bwt",
                                                           "forgetting", "fwt")
                 if isinstance(metrics.get(k), (int, float))}
        self.backend.scalars(final, r.shape[0])
        matrix = run_dir / "accuracy_matrix.png"
        if not matrix.exists():
            report.plot_accuracy_matrix(r, matrix, "accuracy matrix")
        for png in sorted(run_dir.glob("*.png")):
            self.backend.figure(png)
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.backend.close()
            self.closed = True


def tracker_for(cfg: RunConfig, method_name: str, seed: int, run_dir: Path) -> Tracker:
    assert cfg.track is not None
    config = cfg.seed_record(method_name, seed)
    backend: Backend
    if cfg.track.backend == "tensorboard":
        backend = TensorBoardBackend(run_dir / TENSORBOARD_DIR, config)
    else:
        backend = MLflowBackend(cfg.track.uri, cfg.name, f"{method_name} seed {seed}",
                                {**flat(config), "run_dir": str(run_dir)})
    return Tracker(backend, cfg.track.log_every, cfg.train.iters)
