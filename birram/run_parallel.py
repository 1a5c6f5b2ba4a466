"""An experiment's methods in parallel processes (``train.workers``), one method per process.

Each process loads the data itself (the dataset cache makes that quick), trains every seed of
its method exactly as the one-process path does (seeds stacked where they can be) and writes
the same directories; the parent gathers the results and keeps the progress bars. With one
thread per process this uses every core of a CPU, where a single small network cannot.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from birram.config import RunConfig
from birram.data.types import ArrayDataset
from birram.results import SeedResult

ProgressFactory = Callable[[str, int], Callable[[int, int, int], None]]


def threads_per_worker(cfg: RunConfig) -> int:
    """The configured threads, or the cores shared out between the workers."""
    if cfg.train.threads is not None:
        return cfg.train.threads
    return max(1, (os.cpu_count() or 1) // cfg.train.workers)


def _train_method(config: dict[str, Any], name: str, out_dir: str, resume: bool,
                  updates: Any, data: ArrayDataset | None) -> tuple[list[SeedResult], str]:
    """In a worker: every seed of method ``name``."""
    import torch

    from birram.run import prepare_experiment, run_method_seed
    from birram.run_seeds import run_method_seeds

    cfg = RunConfig.model_validate(config)
    torch.set_num_threads(threads_per_worker(cfg))
    inputs = prepare_experiment(cfg, data)
    counter = iter(range(1_000_000))

    def progress(label: str, total: int) -> Callable[[int, int, int], None]:
        key = f"{name}/{next(counter)}"
        updates.put(("new", key, label, total))
        return lambda task, it, per_task: updates.put(("tick", key, task, it, per_task))

    out = Path(out_dir)
    if cfg.train.batch_seeds and len(cfg.seeds) > 1:
        return run_method_seeds(cfg, name, inputs, out, resume, progress)
    results = [r for seed in cfg.seeds
               for r in run_method_seed(cfg, name, seed, inputs.protocols[seed],
                                        out / name / f"seed-{seed}", resume, progress,
                                        inputs.extractor)]
    return results, "one seed at a time"


def _relay(updates: Any, progress: ProgressFactory | None, stop: threading.Event) -> None:
    """In the parent: turn the workers' progress messages into progress bars."""
    ticks: dict[str, Callable[[int, int, int], None]] = {}
    while not stop.is_set() or not updates.empty():
        try:
            message = updates.get(timeout=0.2)
        except queue_module.Empty:
            continue
        if progress is None:
            continue
        if message[0] == "new":
            ticks[message[1]] = progress(message[2], message[3])
        elif message[1] in ticks:
            ticks[message[1]](*message[2:])


def run_methods_in_parallel(cfg: RunConfig, out_dir: Path, resume: bool,
                            progress: ProgressFactory | None, data: ArrayDataset | None
                            ) -> tuple[list[SeedResult], dict[str, str]]:
    """Every method of ``cfg`` in its own process, ``cfg.train.workers`` at a time."""
    context = multiprocessing.get_context("spawn")  # no forked torch or numba state
    with context.Manager() as manager:
        updates = manager.Queue()
        stop = threading.Event()
        relay = threading.Thread(target=_relay, args=(updates, progress, stop), daemon=True)
        relay.start()
        config = cfg.model_dump(mode="json")
        workers = min(cfg.train.workers, len(cfg.methods))
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = {name: pool.submit(_train_method, config, name, str(out_dir),
                                             resume, updates, data)
                           for name in cfg.methods}
                done = {name: future.result() for name, future in futures.items()}
        finally:
            stop.set()
            relay.join()
    results = [r for name in cfg.methods for r in done[name][0]]
    return results, {name: done[name][1] for name in cfg.methods}
