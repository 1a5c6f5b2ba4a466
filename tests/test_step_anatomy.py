"""A smoke test of the step-anatomy benchmark: the products it records are the run's own and
their replay is timed (the timings themselves are never asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.conftest import blobs

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_anatomy.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("step_anatomy", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_products_of_a_run_are_recorded_and_replayed(monkeypatch, tmp_path):
    bench = load_bench()
    import birram.run

    real = birram.run.prepare_experiment
    monkeypatch.setattr(birram.run, "prepare_experiment",
                        lambda cfg, data=None: real(cfg, blobs(n_classes=10, per_class=20)))
    _, seen = bench.train_once("split-mnist-class", "bir", iters=3, tasks=2, seed=1,
                               threads=1, record=True)
    names = {name for name, _ in seen}
    assert names <= set(bench.PRODUCTS) and "addmm" in names
    # Three steps per task, each with a forward and a backward product per layer at least.
    assert sum(seen.values()) >= 2 * 3 * 2
    assert bench.replay_products(seen) > 0
    out = tmp_path / "anatomy.json"
    assert bench.main(["--preset", "split-mnist-class", "--iters", "3", "--tasks", "2",
                       "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["product_calls"] > 0 and result["products_share"] > 0
