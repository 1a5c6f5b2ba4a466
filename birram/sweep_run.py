"""Running a sweep: every (point, method, seed) cell a Ray task, on this machine or a cluster.

Layout of a sweep directory::

    sweep.json                       every point's label, settings and configuration
    sweep_results.csv/.md/.json      one row per (point, method): the grid table
    sweep_<setting>.png              accuracy against each swept setting, one line per method
    <point>/                         an ordinary experiment directory (see birram.run)
    <point>/<method>/seed-<s>/       an ordinary run directory, sealed by its manifest

A cell whose run directory is sealed is read back, not re-run: an interrupted sweep resumes
where it stopped, and a sweep extended by new values runs only those. Each cell trains with
the one training path of :func:`birram.run.run_method_seed`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birram import io, rundir
from birram.config import RunConfig
from birram.errors import BirramError, ConfigError, DataError
from birram.sweep import Point, sweep_record

RECORD = "sweep.json"


@dataclass(frozen=True)
class Cell:
    point: str  # the point's label
    method: str
    seed: int


@dataclass
class SweepResult:
    out_dir: Path
    points: list[Point]
    summaries: dict[str, dict[str, Any]]  # point label -> its experiment summary
    failures: dict[Cell, str] = field(default_factory=dict)  # one line each
    reused: int = 0  # cells read back from sealed run directories
    ran: int = 0


def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise ConfigError("birram sweep runs its cells as Ray tasks: pip install "
                          "birram[sweep]") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None, workers: int | None) -> Iterator[Any]:
    """A Ray instance for the sweep: the one already started in this process (left running),
    the cluster at ``address``, or a local one with ``workers`` CPUs (default: all cores)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    # Each task runs torch on one thread (see run_cell); BLAS pools stay at one thread too.
    runtime_env = {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
    quiet = {"include_dashboard": False, "log_to_driver": False,
             "logging_level": logging.WARNING, "runtime_env": runtime_env}
    try:
        if address is not None:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=workers or os.cpu_count() or 1, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ConfigError(f"cannot start {where} ({str(err).splitlines()[0][:200]}); check "
                          "--address (ray status on the head node shows it)") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def run_cell(cfg: RunConfig, method: str, seed: int, seed_dir: str, data: Any) -> list[Any]:
    """One cell, inside a Ray worker: the same path as one (method, seed) of ``compare``."""
    import torch

    from birram.run import prepare_experiment, run_method_seed

    torch.set_num_threads(cfg.train.threads or 1)
    inputs = prepare_experiment(cfg.model_copy(update={"seeds": [seed]}), data)
    return run_method_seed(cfg, method, seed, inputs.protocols[seed], Path(seed_dir),
                           resume=True, extractor=inputs.extractor)


def check_sweep_dir(out: Path, record: dict[str, Any], resume: bool) -> None:
    """Refuse a directory that holds something else, or points whose configuration changed."""
    rundir.check_writable(out)
    if not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith(".")):
        return
    if not resume:
        raise ConfigError(f"{out} already holds a sweep (or other files); choose another --out, "
                          "or add --resume to continue the sweep it holds")
    path = out / RECORD
    try:
        old = io.read_json_strict(path)
        old_points = {p["label"]: p["config"] for p in old["points"]}
    except FileNotFoundError:
        raise ConfigError(f"{out} is not a sweep directory (it has no {RECORD}); choose "
                          "another --out") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path} is damaged ({err}); choose another --out") from None
    for point in record["points"]:
        if point["label"] in old_points:
            diff = rundir.config_differences(old_points[point["label"]], point["config"])
            if diff:
                raise ConfigError(f"{out}: point {point['label']} was run with another "
                                  f"configuration ({'; '.join(diff[:3])}); resume with the same "
                                  "settings or choose another --out")


CellDone = Callable[[Cell, str], None]  # (cell, "reused" | "ran" | "failed")


def run_sweep(points: list[Point], out: Path, resume: bool = False, address: str | None = None,
              workers: int | None = None, on_cell: CellDone | None = None) -> SweepResult:
    """Run every cell not yet finished as a Ray task, then write each point's experiment report
    and the sweep's table and figures."""
    from birram import run, sweep_report
    from birram.data.registry import load_dataset

    record = sweep_record(points)
    check_sweep_dir(out, record, resume)
    import_ray()  # a missing extra is one line before any data is generated
    # Each distinct dataset is made once, here, and handed to the tasks in memory.
    datasets: dict[str, Any] = {}
    n_tasks: dict[str, int] = {}
    for point in points:
        cfg = point.config
        key = data_key(cfg)
        if key not in datasets:
            datasets[key] = load_dataset(cfg.data)
        # Every bad input fails here, before any file is written; a protocol's task count does
        # not depend on the seed, so one seed's protocol is built.
        inputs = run.prepare_experiment(cfg.model_copy(update={"seeds": cfg.seeds[:1]}),
                                    datasets[key])
        n_tasks[point.label] = inputs.protocols[cfg.seeds[0]].n_tasks
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / RECORD, record)
    result = SweepResult(out, points, {})
    cell_results: dict[Cell, list[run.SeedResult]] = {}
    todo: list[tuple[Cell, Point]] = []
    for point in points:
        cfg = point.config
        run.start_experiment_dir(cfg, out / point.label)
        for seed in cfg.seeds:
            for method in cfg.methods:
                cell, seed_dir = Cell(point.label, method, seed), cell_dir(out, point, method, seed)
                if run.is_finished(cfg, seed_dir):
                    cell_results[cell] = [_read_sealed(run_dir, n_tasks[point.label])
                                          for _, run_dir in run.seed_dirs(cfg, seed_dir)]
                    result.reused += 1
                    if on_cell:
                        on_cell(cell, "reused")
                else:
                    todo.append((cell, point))
    if todo:
        with ray_session(address, workers) as ray:
            cell_results.update(_run_on_ray(ray, todo, out, datasets, result, on_cell))
    for point in points:
        cfg = point.config
        cells = [Cell(point.label, m, s) for s in cfg.seeds for m in cfg.methods]
        if all(c in cell_results for c in cells):
            runs = [r for c in cells for r in cell_results[c]]
            result.summaries[point.label] = run.finish_experiment(
                cfg, out / point.label, runs, datasets[data_key(cfg)].notes)
    sweep_report.write_sweep_report(result)
    return result


def _read_sealed(run_dir: Path, n_tasks: int) -> Any:
    from birram.run import load_seed_result

    rundir.verify(run_dir)
    return load_seed_result(run_dir, n_tasks)


def data_key(cfg: RunConfig) -> str:
    return json.dumps(cfg.data.model_dump(mode="json"), sort_keys=True)


def cell_dir(out: Path, point: Point, method: str, seed: int) -> Path:
    return out / point.label / method / f"seed-{seed}"


def _run_on_ray(ray: Any, todo: list[tuple[Cell, Point]], out: Path, datasets: dict[str, Any],
                result: SweepResult, on_cell: CellDone | None) -> dict[Cell, list[Any]]:
    task = ray.remote(max_retries=0)(run_cell)
    data_refs = {key: ray.put(data) for key, data in datasets.items()}
    pending: dict[Any, Cell] = {}
    for cell, point in todo:
        cfg = point.config
        ref = task.options(num_cpus=cfg.train.threads or 1).remote(
            cfg, cell.method, cell.seed, str(cell_dir(out, point, cell.method, cell.seed)),
            data_refs[data_key(cfg)])
        pending[ref] = cell
    done_results: dict[Cell, list[Any]] = {}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    done_results[cell] = ray.get(ref)
                    result.ran += 1
                    status = "ran"
                except ray.exceptions.RayTaskError as err:
                    cause = getattr(err, "cause", None)
                    if not isinstance(cause, BirramError):
                        raise
                    result.failures[cell] = str(cause)
                    status = "failed"
                except ray.exceptions.RayError as err:  # a worker died (memory, a node lost)
                    result.failures[cell] = str(err).splitlines()[0][:300]
                    status = "failed"
                if on_cell:
                    on_cell(cell, status)
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    return done_results
