"""Accuracy-on-chip sweeps over a finished run: restoring the trained model, what the ideal chip
must reproduce, determinism, and the ``chip-sweep`` command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safetensors.torch import save as save_tensors
from typer.testing import CliRunner

from birram import io, rundir
from birram.cli import app
from birram.errors import ConfigError
from birram.hardware.chip import chip_preset
from birram.hardware.ideal_cells import IdealCells
from birram.onchip import deployed_copy
from birram.onchip_sweeps import (
    ROOM_TEMP_K,
    digital_accuracy,
    restore_trained,
    sweep_levels,
    sweep_programming_noise,
    sweep_retention,
)
from birram.train import evaluate

runner = CliRunner()
LAST = 4  # split-digits has 5 tasks


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished run. Task-incremental, so the model is accurate (about 80 %) and the
    chip's quantisation and noise have something to take away."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = runner.invoke(app, ["compare", "--protocol", "split-digits", "--scenario", "task",
                                 "--methods", "none", "--seeds", "1", "--iters", "30",
                                 "--hidden", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def trained(experiment: Path):
    return restore_trained(experiment / "none" / "seed-1")


@pytest.fixture(autouse=True)
def cell_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """RRAM cells calibrated here go to a scratch cache, never the user's."""
    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path_factory.getbasetemp() / "cells"))


def small_rram_chip():
    return chip_preset("rram-4bit").replace(n_levels=4)  # 4 levels calibrate in about 1 s


def means(result: dict) -> list[list[float]]:
    return [[p["mean"] for p in series["points"]] for series in result["series"]]


def test_restore_reproduces_the_saved_accuracy(experiment: Path, trained) -> None:
    method, ctx = trained
    metrics = io.read_json_strict(experiment / "none" / "seed-1" / "metrics.json")
    assert evaluate(method, ctx, LAST) == metrics["accuracy_matrix"][-1]
    assert digital_accuracy(method, ctx) == pytest.approx(metrics["average_accuracy"], abs=1e-12)
    assert metrics["average_accuracy"] > 0.6  # a model worth sweeping


def test_ideal_continuous_chip_gives_the_digital_accuracy_everywhere(trained) -> None:
    method, ctx = trained
    ideal = chip_preset("ideal")
    digital = digital_accuracy(method, ctx)
    noise = sweep_programming_noise(method, ctx, ideal, [0.0, 1.0, 8.0], chips=2)
    retention = sweep_retention(method, ctx, ideal, [1.0, 3e8], chips=2)
    for result in (noise, retention):
        assert result["digital_accuracy"] == digital
        for series in result["series"]:
            for p in series["points"]:
                assert p["per_chip"] == [digital, digital]
    assert retention["unaged"]["per_chip"] == [digital, digital]
    assert len(retention["series"]) == 4  # 25 and 85 °C, each without and with compensation


def test_more_levels_approach_the_digital_accuracy(trained) -> None:
    method, ctx = trained
    result = sweep_levels(method, ctx, chip_preset("ideal"), [2, 4, 16, 64], chips=2)
    curve = means(result)[0]
    assert all(later >= earlier - 0.03 for earlier, later in zip(curve, curve[1:])), curve
    assert abs(curve[-1] - result["digital_accuracy"]) <= 0.02


def test_retention_after_one_second_at_25_c_equals_the_unaged_accuracy(trained) -> None:
    method, ctx = trained
    result = sweep_retention(method, ctx, small_rram_chip(), {"1 s": 1.0}, [ROOM_TEMP_K],
                             chips=2, drift_compensation=False)
    (series,) = result["series"]
    assert series["points"][0]["per_chip"] == result["unaged"]["per_chip"]
    assert series["temp_k"] == ROOM_TEMP_K and series["drift_compensation"] is False


def test_sweeps_are_deterministic_and_chips_differ(trained) -> None:
    method, ctx = trained
    chip = small_rram_chip()
    first = sweep_programming_noise(method, ctx, chip, [0.0, 2.0], chips=2)
    again = sweep_programming_noise(method, ctx, chip, [0.0, 2.0], chips=2)
    assert first == again
    assert first["chip_seeds"] == [1, 2]
    noisy = first["series"][0]["points"][1]["per_chip"]
    assert noisy[0] != noisy[1]  # two chips: two fault and programming draws
    assert all(0.0 <= a <= 1.0 for p in first["series"][0]["points"] for a in p["per_chip"])


def test_bad_sweep_arguments_are_config_errors(trained) -> None:
    method, ctx = trained
    with pytest.raises(ConfigError, match="chips=0"):
        sweep_levels(method, ctx, chip_preset("ideal"), [4], chips=0)
    with pytest.raises(ConfigError, match="n_levels=1"):
        sweep_levels(method, ctx, chip_preset("ideal"), [1], chips=1)
    with pytest.raises(ConfigError, match="retention time"):
        sweep_retention(method, ctx, chip_preset("ideal"), [-1.0], chips=1)


def copy_run(experiment: Path, tmp_path: Path) -> Path:
    run = tmp_path / "seed-1"
    shutil.copytree(experiment / "none" / "seed-1", run)
    return run


def test_restore_keeps_only_the_shadow_weights_of_a_deployed_model(experiment: Path, trained,
                                                                  tmp_path: Path) -> None:
    """A hardware-aware run saves the deployed model: weights plus the chip's device buffers."""
    method, ctx = trained
    run = copy_run(experiment, tmp_path)
    deployed = deployed_copy(ctx.model, chip_preset("ideal"), IdealCells(n_levels=None))
    assert any(key.endswith(".g") for key in deployed.state_dict())
    model_file = run / "model.safetensors"
    model_file.write_bytes(save_tensors({k: v.contiguous().clone()
                                         for k, v in deployed.state_dict().items()}))
    rundir.seal(run, list(io.read_json_strict(run / rundir.MANIFEST)))  # as the run would
    again, restored = restore_trained(run)
    assert evaluate(again, restored, LAST) == evaluate(method, ctx, LAST)


def test_methods_that_predict_with_more_than_the_model_are_refused(experiment: Path,
                                                                   tmp_path: Path) -> None:
    run = copy_run(experiment, tmp_path)
    config = io.read_json_strict(run / "config.json")
    io.write_json(run / "config.json", {**config, "method_name": "icarl"})
    rundir.seal(run, ["config.json"])
    with pytest.raises(ConfigError, match="icarl predicts with more than its model"):
        restore_trained(run)


def test_chip_sweep_writes_three_figures_and_strict_json(experiment: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "sweeps"
    result = runner.invoke(app, ["chip-sweep", str(experiment), "--method", "none", "--chip",
                                 "ideal", "--chips", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("accuracy_vs_levels.png", "accuracy_vs_programming_noise.png",
                 "accuracy_vs_retention.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = io.read_json_strict(out / "sweeps.json")
    metrics = io.read_json_strict(experiment / "none" / "seed-1" / "metrics.json")
    assert saved["digital_accuracy"] == pytest.approx(metrics["average_accuracy"], abs=1e-12)
    assert set(saved["sweeps"]) == {"levels", "programming_noise", "retention"}
    assert [p["x"] for p in saved["sweeps"]["levels"]["series"][0]["points"]] == \
        [2, 4, 8, 16, 32, 64]
    assert "levels per device" in result.output and "10 years" in result.output


@pytest.mark.parametrize("args, needle", [
    (["/no/such/run"], "does not exist"),
    (["{run}", "--method", "nonsense"], "unknown method 'nonsense'"),
    (["{run}", "--method", "bir"], "holds no run of bir; it holds: none"),
    (["{run}", "--method", "none", "--seed", "7"], "holds no seed 7 of none"),
    (["{run}", "--method", "none", "--chip", "nope"], "chip preset 'nope' unknown"),
    (["{run}", "--method", "none", "--chips", "101"], "--chips must lie in [1, 100]"),
])
def test_chip_sweep_bad_input_is_one_line_with_exit_code_2(experiment: Path, args: list[str],
                                                           needle: str) -> None:
    result = runner.invoke(app, ["chip-sweep", *(a.format(run=experiment) for a in args)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert needle in result.output
    assert len(result.output.strip().splitlines()) == 1
