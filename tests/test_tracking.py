"""Tracking: every run mirrored to TensorBoard (real) or MLflow (a recording stand-in)."""

import json
import sys
import types

import numpy as np
import pytest

from birram.config import build_config
from birram.errors import ConfigError
from birram.run import run_experiment
from tests.conftest import blobs


def tracked_config(backend: str, **track):
    return build_config({
        "name": "tracked", "methods": ["none", "bir"], "seeds": [3],
        "data": {"protocol": "split-fashion", "n_tasks": 2},
        "train": {"iters": 20, "batch_size": 16, "hidden": [16]},
        "method": {"z_dim": 4, "kl_weight": 0.5},
        "track": {"backend": backend, "log_every": 10, **track}})


def test_tensorboard_holds_losses_accuracies_and_figures(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    run_experiment(tracked_config("tensorboard"), out, data=blobs())
    run_dir = out / "bir" / "seed-3"
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    r = np.array(json.loads((run_dir / "metrics.json").read_text())["accuracy_matrix"])
    for j in range(2):  # the accuracy on each task after each task: the matrix's columns
        points = events.Scalars(f"accuracy/task_{j + 1}")
        assert [p.step for p in points] == [1, 2]
        assert np.allclose([p.value for p in points], r[:, j])
    loss_tags = [t for t in tags["scalars"] if t.startswith("loss/")]
    assert loss_tags
    assert [p.step for p in events.Scalars(loss_tags[0])] == [10, 20, 30, 40]
    assert "final/average_accuracy" in tags["scalars"]
    assert {"accuracy_matrix", "replay_samples_task1", "replay_samples_task2"} <= set(
        tags["images"])
    assert "config/text_summary" in tags["tensors"]  # the configuration, as text
    # The run directory is still the record: sealed, with nothing of the tracker in it.
    sealed = json.loads((run_dir / "manifest.json").read_text())
    assert not any("tensorboard" in name for name in sealed)


class FakeClient:
    """Records what birram sends to MLflow's client."""

    runs: list[dict] = []

    def __init__(self, tracking_uri=None):
        self.uri = tracking_uri

    def get_experiment_by_name(self, name):
        return None

    def create_experiment(self, name):
        return f"exp-{name}"

    def create_run(self, experiment_id, run_name=None):
        run = {"id": f"run{len(self.runs)}", "experiment": experiment_id, "name": run_name,
               "uri": self.uri, "params": {}, "metrics": [], "artifacts": [], "ended": False}
        self.runs.append(run)
        return types.SimpleNamespace(info=types.SimpleNamespace(run_id=run["id"]))

    def _run(self, run_id):
        return next(r for r in self.runs if r["id"] == run_id)

    def log_param(self, run_id, key, value):
        self._run(run_id)["params"][key] = value

    def log_metric(self, run_id, key, value, step=0):
        self._run(run_id)["metrics"].append((key, value, step))

    def log_artifact(self, run_id, path):
        self._run(run_id)["artifacts"].append(path)

    def set_terminated(self, run_id):
        self._run(run_id)["ended"] = True


@pytest.fixture
def fake_mlflow(monkeypatch):
    """A stand-in ``mlflow`` package (the real one takes minutes to install and seconds to
    start a store), with the client API birram uses."""
    FakeClient.runs = []
    mlflow = types.ModuleType("mlflow")
    tracking = types.ModuleType("mlflow.tracking")
    tracking.MlflowClient = FakeClient
    mlflow.tracking = tracking
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", tracking)
    return FakeClient


def test_mlflow_gets_one_run_per_method_and_seed(tmp_path, fake_mlflow):
    out = tmp_path / "run"
    run_experiment(tracked_config("mlflow", uri="sqlite:///x.db"), out, data=blobs())
    assert [r["name"] for r in fake_mlflow.runs] == ["none seed 3", "bir seed 3"]
    bir = fake_mlflow.runs[1]
    assert bir["uri"] == "sqlite:///x.db" and bir["experiment"] == "exp-tracked" and bir["ended"]
    assert bir["params"]["method.kl_weight"] == "0.5" and bir["params"]["seed"] == "3"
    assert bir["params"]["run_dir"] == str(out / "bir" / "seed-3")
    r = json.loads((out / "bir" / "seed-3" / "metrics.json").read_text())["accuracy_matrix"]
    task2 = [(v, s) for k, v, s in bir["metrics"] if k == "accuracy/task_2"]
    assert task2 == [(r[0][1], 1), (r[1][1], 2)]
    assert {s for k, _, s in bir["metrics"] if k.startswith("loss/")} == {10, 20, 30, 40}
    assert any(a.endswith("accuracy_matrix.png") for a in bir["artifacts"])


def test_a_run_stopped_early_still_closes_its_tracker(tmp_path, fake_mlflow):
    import birram.run as run_module

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    cfg = tracked_config("mlflow").model_copy(update={"methods": ["none"]})
    original = run_module.save_checkpoint
    run_module.save_checkpoint = stop
    try:
        with pytest.raises(Stop):
            run_experiment(cfg, tmp_path / "run", data=blobs())
    finally:
        run_module.save_checkpoint = original
    assert fake_mlflow.runs[0]["ended"]


def test_missing_tracker_packages_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"pip install birram\[track\]"):
        run_experiment(tracked_config("tensorboard"), tmp_path / "a", data=blobs())
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(ConfigError, match=r"mlflow.*pip install birram\[track\]"):
        run_experiment(tracked_config("mlflow"), tmp_path / "b", data=blobs())


def test_tracking_does_not_count_as_a_different_configuration():
    from birram.rundir import config_differences

    plain = tracked_config("tensorboard").model_copy(update={"track": None})
    tracked = tracked_config("mlflow")
    assert config_differences(plain.model_dump(mode="json"), tracked.model_dump(mode="json")) \
        == []
