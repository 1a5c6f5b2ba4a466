"""A smoke test of the seed-stacking benchmark: it runs and reports sane figures (the timings
themselves are benchmarks' business, never asserted)."""

from __future__ import annotations

import math

from tests.conftest import load_benchmark


def test_one_seed_and_stacked_seeds_are_measured(blob_experiments):
    bench = load_benchmark("bench_seeds")
    for mode in ("single", "stacked"):
        row = bench.measure("split-mnist-class", "bir", [1, 2], mode, iters=3, threads=1,
                            device="cpu")
        assert row["seeds"] == ([1] if mode == "single" else [1, 2])
        assert row["wall_s"] > 0 and math.isfinite(row["seed_iterations_per_s"])
        assert 0.0 <= row["final_avg_accuracy"] <= 1.0
        assert len(row["per_seed_accuracy"]) == len(row["seeds"])


def test_stacked_seeds_are_measured_with_bfloat16_products(blob_experiments):
    bench = load_benchmark("bench_seeds")
    row = bench.measure("split-mnist-class", "bir", [1, 2], "stacked", iters=3, threads=1,
                        device="cpu", precision="bfloat16")
    assert row["seeds"] == [1, 2] and 0.0 <= row["final_avg_accuracy"] <= 1.0
