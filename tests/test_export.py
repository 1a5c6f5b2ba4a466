import importlib.util
import json

import numpy as np
import pytest
import torch

from birram.config import MethodConfig
from birram.data.protocols import split_protocol
from birram.errors import ConfigError
from birram.export import (
    ONNX_TOLERANCE,
    export_all,
    export_model,
    load_exported,
    max_abs_difference,
    onnx_available,
)
from birram.methods.base import TrainSettings
from birram.methods.registry import build_method
from birram.train import evaluate, make_context, prepare, train_continual
from tests.conftest import blobs

needs_onnx = pytest.mark.skipif(not onnx_available(), reason="the export extra is not installed")


def trained(name, scenario="class"):
    protocol = split_protocol(blobs(n_classes=4), scenario, 2)
    method = build_method(name, MethodConfig())
    ctx = prepare(method, make_context(protocol, TrainSettings(iters=15, batch_size=16,
                                                               hidden=(16,)), 0))
    train_continual(method, ctx)
    return protocol, method, ctx


@pytest.mark.parametrize("name", ["none", "icarl", "bir"])
def test_exported_program_predicts_like_the_method(tmp_path, name):
    protocol, method, ctx = trained(name)
    module = load_exported(export_model(method, ctx, tmp_path / "model.pt2"))
    for batch in (1, 7, 40):  # the batch dimension is dynamic
        x = protocol.tasks[1].x_test[:batch]
        torch.testing.assert_close(module(x), method.predict(ctx, x), atol=1e-4, rtol=1e-4)


def test_task_incremental_export_takes_each_rows_task(tmp_path):
    """Task-IL: the scores of a row are those of its own task's head, the rest masked."""
    protocol, method, ctx = trained("xdg", "task")
    module = load_exported(export_model(method, ctx, tmp_path / "model.pt2"))
    x = torch.cat([protocol.tasks[0].x_test[:3], protocol.tasks[1].x_test[:2]])
    task = torch.tensor([0, 0, 0, 1, 1])
    scores = module(x, task)
    own = protocol.task_masks()[task]
    assert torch.isfinite(scores[own]).all() and torch.isinf(scores[~own]).all()
    expected = method.predict(ctx, x).masked_fill(~own, float("-inf"))
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)


@needs_onnx
@pytest.mark.parametrize(("name", "scenario"), [("bir", "class"), ("xdg", "task")])
def test_onnx_matches_torch_and_int8_is_reported(tmp_path, name, scenario):
    protocol, method, ctx = trained(name, scenario)
    report = export_all(method, ctx, tmp_path)
    assert json.loads((tmp_path / "export.json").read_text()) == report
    for file in ("model.pt2", "model.onnx", "model.int8.onnx"):
        assert (tmp_path / file).stat().st_size > 0, file
    onnx = report["formats"]["onnx"]
    assert onnx["max_abs_difference"] <= ONNX_TOLERANCE and onnx["within_tolerance"]
    assert onnx["max_abs_difference_probabilities"] <= ONNX_TOLERANCE
    assert onnx["predictions_agree"] == 1.0
    assert report["formats"]["pt2"]["max_abs_difference"] <= ONNX_TOLERANCE
    assert report["inputs"] == (["x", "task"] if scenario == "task" else ["x"])
    acc = report["accuracy"]
    # The exported model is scored exactly as the training loop scores the method.
    final = evaluate(method, ctx, protocol.n_tasks - 1)
    assert acc["torch_fp32"] == pytest.approx(float(np.mean(final)))
    assert acc["onnx_fp32"] == pytest.approx(acc["torch_fp32"])
    assert abs(acc["onnx_int8"] - acc["onnx_fp32"]) <= 0.1  # int8 stays near fp32
    assert report["formats"]["onnx_int8"]["max_abs_difference"] > 0  # it is quantised


@needs_onnx
def test_run_with_export_writes_onnx_that_runs_on_its_own(tmp_path):
    """Through the command line: export.json agrees with the run's own metrics, and the ONNX
    file needs nothing of birram (onnxruntime alone scores a batch)."""
    import onnxruntime as ort
    from typer.testing import CliRunner

    from birram.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", "--method", "none", "--protocol", "split-digits", "--iters", "3", "--hidden", "8",
        "--threads", "1", "--export", "--set", 'export_formats=["onnx"]', "--out", str(out)])
    assert result.exit_code == 0, result.output
    seed_dir = out / "none" / "seed-1"
    report = json.loads((seed_dir / "export.json").read_text())
    metrics = json.loads((seed_dir / "metrics.json").read_text())
    assert not (seed_dir / "model.pt2").exists()  # only the formats asked for
    assert report["formats"]["onnx"]["within_tolerance"]
    assert report["accuracy"]["onnx_fp32"] == pytest.approx(metrics["average_accuracy"])
    session = ort.InferenceSession(str(seed_dir / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {"x": np.zeros((3, 1, 8, 8), dtype=np.float32)})
    assert scores.shape == (3, 10) and np.isfinite(scores).all()  # class-IL: all 10 learnt


def test_missing_onnx_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    protocol, method, ctx = trained("none")
    with pytest.raises(ConfigError, match=r"pip install birram\[export\]") as err:
        export_all(method, ctx, tmp_path)
    assert "\n" not in str(err.value) and "onnxruntime" in str(err.value)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_max_abs_difference_sees_masks_that_differ():
    a = np.array([[0.0, -np.inf], [1.0, 2.0]])
    assert max_abs_difference(a, a + 1e-7) == pytest.approx(1e-7)
    b = a.copy()
    b[1, 1] = -np.inf
    assert max_abs_difference(a, b) == float("inf")


def test_export_without_onnx_fails_before_training(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from birram.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnx" else real(name, *a))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--method", "none", "--protocol", "split-digits",
                                      "--export", "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install birram[export]" in lines[0]
    assert not out.exists()
