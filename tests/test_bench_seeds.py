"""A smoke test of the seed-stacking benchmark: it runs and reports sane figures (the timings
themselves are benchmarks' business, never asserted)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from tests.conftest import blobs

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_seeds.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_seeds", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_seed_and_stacked_seeds_are_measured(monkeypatch):
    bench = load_bench()
    import birram.run

    real = birram.run.prepare_experiment
    monkeypatch.setattr(birram.run, "prepare_experiment",
                        lambda cfg, data=None: real(cfg, blobs(n_classes=10, per_class=20)))
    for mode in ("single", "stacked"):
        row = bench.measure("split-mnist-class", "bir", [1, 2], mode, iters=3, threads=1,
                            device="cpu")
        assert row["seeds"] == ([1] if mode == "single" else [1, 2])
        assert row["wall_s"] > 0 and math.isfinite(row["seed_iterations_per_s"])
        assert 0.0 <= row["final_avg_accuracy"] <= 1.0
        assert len(row["per_seed_accuracy"]) == len(row["seeds"])
