"""A smoke test of the step-anatomy benchmark: the products it records are the run's own and
their replay is timed (the timings themselves are never asserted)."""

from __future__ import annotations

import json

from tests.conftest import load_benchmark


def test_the_products_of_a_run_are_recorded_and_replayed(blob_experiments, tmp_path):
    bench = load_benchmark("step_anatomy")
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
