"""Small end-to-end runs through the command line, as a user would run them."""

import json

from typer.testing import CliRunner

from birram.cli import app

runner = CliRunner()
TINY_RRAM = json.dumps({"n_levels": 4, "n_train_devices": 6, "n_test_devices": 2, "cycles": 1,
                        "trace_points": 16, "sweep_step_v": 0.01})


def test_rram_comparison_writes_report_and_replay_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "compare", "--protocol", "rram-compliance", "--n-tasks", "2", "--methods",
        "none,bir,joint", "--seeds", "1", "--iters", "30", "--hidden", "32,32", "--threads", "1",
        "--set", f"data.rram={TINY_RRAM}", "--set", "method.z_dim=4", "--export",
        "--set", 'export_formats=["pt2"]',  # ONNX export: tests/test_export.py
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ["report.md", "report.html", "results.md", "accuracy_curve.png", "summary.json",
                 "devices_iv.png", "devices_features.png", "devices_overlap.png"]:
        assert (out / name).exists(), name
    bir = out / "bir" / "seed-1"
    for name in ["replay_samples_task1.png", "replay_samples_task2.png", "accuracy_matrix.png",
                 "confusion.png", "model.safetensors", "model.pt2"]:
        assert (bir / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"none", "bir", "joint"}


def test_demo_command_runs_the_preset_end_to_end(tmp_path, monkeypatch):
    import birram.cli as cli
    from birram import config

    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path / "cache"))
    real = config.load_preset

    def tiny(name):
        preset = real(name)
        preset["seeds"] = [1]
        preset["methods"] = ["none", "bir"]
        preset["data"]["n_tasks"] = 2
        preset["data"]["rram"] = json.loads(TINY_RRAM)
        preset["train"].update(iters=20, hidden=[16])
        return preset

    monkeypatch.setattr(config, "load_preset", tiny)
    out = tmp_path / "demo"
    result = runner.invoke(cli.app, ["demo", "--quick", "--order", "decreasing", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Report:" in result.output and (out / "report.md").exists()
    saved = json.loads((out / "config.json").read_text())
    assert saved["data"]["class_order"] == [3, 2, 1, 0]
    # the demo also programs each learner onto simulated RRAM chips after every task
    assert saved["hardware"]["chip"] == "rram-4bit" and (out / "hardware.md").exists()
    assert (out / "bir" / "seed-1" / "model.pt2").exists()  # the demo still exports
    assert "on the chip" in result.output


def test_demo_rejects_unknown_order():
    result = runner.invoke(app, ["demo", "--order", "sideways"])
    assert result.exit_code == 2 and "increasing or decreasing" in result.output
