"""Continual learning with the weights on simulated chips: both modes, every method."""

from __future__ import annotations

import numpy as np
import pytest

from birram import io
from birram.config import resolve
from birram.methods.registry import METHODS
from birram.run import run_experiment
from tests.conftest import blobs


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    # RRAM cells are calibrated once per configuration and cached; keep tests off ~/.cache.
    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def tiny(methods: list[str], scenario: str = "class", **hardware) -> object:
    return resolve(None, {
        "methods": methods, "seeds": [1], "scenario": scenario,
        "data": {"protocol": "split-digits", "n_tasks": 2},
        "train": {"iters": 6, "hidden": [8], "batch_size": 16},
        "method": {"z_dim": 3, "er_samples_per_class": 4, "icarl_samples_per_class": 4,
                   "ewc_fisher_samples": 16},
        "hardware": {"chips": 2, **hardware}})


def hardware_json(out, method, chip: int | None = None):
    seed_dir = out / method / "seed-1"
    return io.read_json_strict((seed_dir / f"chip-{chip}" if chip else seed_dir)
                               / "hardware.json")


def test_ideal_chip_after_each_task_equals_the_digital_model(tmp_path):
    out = tmp_path / "ideal"
    run_experiment(tiny(["none", "bir"], chip="ideal"), out, data=blobs(per_class=30))
    for method in ("none", "bir"):
        hw = hardware_json(out, method)
        digital = np.array(hw["digital_accuracy_matrix"])
        for matrix in hw["device_accuracy_matrices"]:
            np.testing.assert_allclose(matrix, digital, atol=1e-9)


@pytest.mark.parametrize("mode", ["program-after-task", "hardware-aware"])
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_on_the_rram_chip(tmp_path, method, mode):
    out = tmp_path / "run"
    # Methods that need the task identity refuse class-IL; they run task-IL here instead.
    scenario = "class" if "class" in METHODS[method].scenarios else "task"
    cfg = tiny([method], scenario, chip="rram-4bit", mode=mode, changes={"n_levels": 4})
    run_experiment(cfg, out, data=blobs(per_class=30))
    chips = [1, 2] if mode == "hardware-aware" else [None]
    for chip in chips:
        hw = hardware_json(out, method, chip)
        device = np.array(hw["device_accuracy_matrices"])
        assert device.shape == (1 if chip else 2, 2, 2)
        assert ((device >= 0) & (device <= 1)).all()
        assert hw["writes_per_task"][0][0] > 0  # the first task programs the array
        assert all(w <= 2 * hw["devices"] * 1 for w in hw["writes_per_task"][0]) or \
            mode == "hardware-aware"  # after-task writes: at most one per device and task
        energy = hw["energy_per_inference"]
        assert energy["analog_inference_energy_j"] > 0
        assert energy["digital_fp32_sram_j"] > energy["digital_int8_sram_j"] > 0
    summary = io.read_json_strict(out / "hardware_summary.json")
    assert method in summary["methods"]


def test_program_after_task_rewrites_only_what_changed(tmp_path):
    out = tmp_path / "a"
    run_experiment(tiny(["none"], chip="rram-4bit", changes={"n_levels": 4}), out,
                   data=blobs(per_class=30))
    hw = hardware_json(out, "none")
    for per_chip in hw["writes_per_task"]:
        assert 0 < per_chip[1] < hw["devices"]  # the second task rewrites a part only
    assert max(hw["writes_max_per_device"]) <= 2  # one write per task at most


def test_bytes_kept_between_tasks(tmp_path):
    out = tmp_path / "b"
    run_experiment(tiny(["none", "er", "joint", "bir"], chip="ideal"), out,
                   data=blobs(per_class=30))
    kept = {m: hardware_json(out, m)["bytes_kept_between_tasks"]
            for m in ("none", "er", "joint", "bir")}
    assert kept["none"] == 0
    assert kept["er"] > 0 and kept["bir"] > 0
    data = blobs(per_class=30)
    assert kept["joint"] == data.x_train.numel() * 4 + data.y_train.numel() * 8
    aware = tmp_path / "b2"
    run_experiment(tiny(["bir"], chip="ideal", mode="hardware-aware", chips=1), aware,
                   data=blobs(per_class=30))
    # the previous model kept on a chip counts as a digital copy, not its device buffers
    assert hardware_json(aware, "bir", 1)["bytes_kept_between_tasks"] == kept["bir"]


def test_finished_hardware_run_is_sealed_and_reused(tmp_path):
    out = tmp_path / "c"
    cfg = tiny(["none"], chip="ideal")
    run_experiment(cfg, out, data=blobs(per_class=30))
    manifest = io.read_json_strict(out / "none" / "seed-1" / "manifest.json")
    assert "hardware.json" in manifest
    before = (out / "none" / "seed-1" / "hardware.json").read_text()
    again = run_experiment(cfg, out, data=blobs(per_class=30))
    assert (out / "none" / "seed-1" / "hardware.json").read_text() == before
    assert again.summary["hardware"]["methods"]["none"]["chip_instances"] == 2


def test_same_chip_seed_same_chip(tmp_path):
    runs = []
    for name in ("x", "y"):
        run_experiment(tiny(["none"], chip="rram-4bit", changes={"n_levels": 4}),
                       tmp_path / name, data=blobs(per_class=30))
        runs.append(hardware_json(tmp_path / name, "none"))
    assert runs[0]["device_accuracy_matrices"] == runs[1]["device_accuracy_matrices"]
    assert runs[0]["writes_per_task"] == runs[1]["writes_per_task"]
