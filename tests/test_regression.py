"""The regression target (log10 I_CC instead of its class): metrics, the protocol, every method
that regresses on a tiny task sequence, the Fisher of a regression output, and refusals."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from birram.cli import app
from birram.config import build_config
from birram.data.protocols import regression_protocol, split_protocol
from birram.errors import ConfigError
from birram.methods.registry import build_method, check_methods, regressing_methods
from birram.methods.regularisers import diagonal_fisher
from birram.metrics import mean_absolute_error, r_squared, summarise_regression
from birram.run import load_seed_result, run_experiment
from tests.conftest import blobs

runner = CliRunner()
LEVELS_A = (1e-5, 1e-4, 1e-3, 1e-2)  # log10: -5, -4, -3, -2


def level_blobs(spread: float = 0.3):
    return dataclasses.replace(blobs(spread=spread), class_values=LEVELS_A)


# -- metrics -----------------------------------------------------------------------------------

def test_mae_and_r2_known_values() -> None:
    truth = np.array([-5.0, -4.0, -3.0, -2.0])
    assert mean_absolute_error(truth + np.array([0.1, -0.1, 0.2, 0.0]), truth) \
        == pytest.approx(0.1)
    # SS_tot = 5, SS_res = 4 * 0.25 = 1
    assert r_squared(truth + 0.5, truth) == pytest.approx(0.8)
    assert r_squared(truth, truth) == pytest.approx(1.0)
    # predicting the mean scores 0; worse than the mean is negative
    assert r_squared(np.full(4, truth.mean()), truth) == pytest.approx(0.0)
    assert r_squared(truth[::-1], truth) == pytest.approx(-3.0)
    assert r_squared(np.array([1.0, 2.0]), np.array([-3.0, -3.0])) is None  # undefined
    with pytest.raises(ValueError, match="must match"):
        mean_absolute_error(np.zeros(3), np.zeros(4))


def test_regression_summary_pools_the_last_row() -> None:
    records = [{"mae": [0.1, 2.0], "r2": [0.5, None], "mae_seen": 0.1, "r2_seen": 0.5},
               {"mae": [0.4, 0.2], "r2": [-1.0, 0.3], "mae_seen": 0.3, "r2_seen": 0.9}]
    summary = summarise_regression(records)
    assert summary.mae == 0.3 and summary.r2 == 0.9
    assert summary.mae_matrix == [[0.1, 2.0], [0.4, 0.2]]
    assert summary.mae_seen_after_each_task == [0.1, 0.3]


# -- protocol ----------------------------------------------------------------------------------

def test_regression_protocol_keeps_the_split_and_targets_the_level() -> None:
    data = level_blobs()
    classes = split_protocol(data, "class", 2, [3, 2, 1, 0])
    protocol = regression_protocol(data, "class", 2, [3, 2, 1, 0])
    target = protocol.regression
    assert target is not None and protocol.n_outputs == 1
    assert target.centre == pytest.approx(-3.5) and target.scale == pytest.approx(1.5)
    for cls_task, reg_task in zip(classes.tasks, protocol.tasks):
        torch.testing.assert_close(cls_task.x_train, reg_task.x_train)
        assert reg_task.class_names == cls_task.class_names and reg_task.outputs == (0,)
    # task 1 holds classes 3 and 2 (1e-2 A and 1e-3 A): targets -2 and -3 decades
    first = protocol.tasks[0]
    assert set(target.to_decades(first.y_train).round().tolist()) == {-2.0, -3.0}
    assert target.nearest_level(first.y_test).unique().tolist() == [2, 3]
    assert target.nearest_level(torch.tensor([(-4.4 + 3.5) / 1.5])).tolist() == [1]


@pytest.mark.parametrize(("call", "pattern"), [
    (lambda: regression_protocol(blobs(), "class", 2), r"classes without values"),
    (lambda: regression_protocol(level_blobs(), "task", 2), r"use scenario class or domain"),
])
def test_regression_protocol_refusals(call, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        call()


# -- methods -----------------------------------------------------------------------------------

def tiny_config(methods: list[str], iters: int = 20, **changes) -> object:
    base = {"name": "reg", "methods": methods, "seeds": [1], "target": "log10-icc",
            "data": {"protocol": "rram-compliance", "n_tasks": 2},
            "train": {"iters": iters, "batch_size": 16, "hidden": [16], "threads": 1},
            "method": {"z_dim": 3, "ewc_lambda": 10.0, "online_ewc_lambda": 10.0, "si_c": 1.0}}
    return build_config({**base, **changes})


@pytest.mark.parametrize("name", regressing_methods())
def test_every_regressing_method_runs_a_tiny_sequence(name: str) -> None:
    from birram.config import MethodConfig
    from birram.methods.base import TrainSettings
    from birram.train import make_context, prepare, train_continual

    protocol = regression_protocol(level_blobs(), "class", 2)
    method = build_method(name, MethodConfig(z_dim=3, ewc_lambda=10.0, online_ewc_lambda=10.0,
                                             si_c=1.0), target="log10-icc")
    ctx = prepare(method, make_context(protocol, TrainSettings(iters=15, batch_size=16,
                                                               hidden=(16,)), seed=1))
    state = train_continual(method, ctx)
    reg = summarise_regression([rec.regression for rec in state.records])
    assert np.array(reg.mae_matrix).shape == (2, 2)
    assert all(math.isfinite(v) and v >= 0 for row in reg.mae_matrix for v in row)
    assert reg.mae == reg.mae_seen_after_each_task[-1]
    assert all(0 <= a <= 1 for rec in state.records for a in rec.accuracies)


def test_regressing_methods_cover_the_baselines_and_replay() -> None:
    assert {"none", "joint", "ewc", "online-ewc", "si", "lwf", "bir", "dgr"} \
        <= set(regressing_methods())


def test_joint_learns_and_fine_tuning_forgets(tmp_path) -> None:
    result = run_experiment(tiny_config(["none", "joint"], iters=150), tmp_path,
                            data=level_blobs())
    none, joint = (r.metrics["regression"] for r in result.results)
    assert joint["mae"] < 0.25 and joint["r2"] > 0.9
    # fine-tuning on levels 3-4 moves its predictions for levels 1-2 away (by decades)
    assert none["mae_matrix"][1][0] > 3 * joint["mae_matrix"][1][0]
    assert none["mae_matrix"][0][0] < 0.25  # it had learnt task 1
    for name in ("none", "joint"):
        assert (tmp_path / name / "seed-1" / "mae_matrix.csv").is_file()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["target"] == "log10-icc"
    assert set(summary["methods"]["joint"]) >= {"mae_mean", "mae_se", "r2_mean",
                                                "mae_curve_mean"}
    assert "MAE dec" in (tmp_path / "results.md").read_text()
    # a sealed result reads back with its regression scores
    again = load_seed_result(tmp_path / "joint" / "seed-1", 2)
    assert again.metrics["regression"]["mae"] == joint["mae"]


def test_bir_regresses_with_the_standard_prior_and_task_gates_only() -> None:
    from birram.config import MethodConfig

    method = build_method("bir", MethodConfig(), target="log10-icc")
    assert method.feedback and method.distill and not method.conditional and not method.gating
    gated = build_method("bir", MethodConfig(gate_by="task"), target="log10-icc")
    assert gated.gating and gated.gate_by == "task" and not gated.conditional
    classic = build_method("bir", MethodConfig())  # the classifier keeps every component
    assert classic.conditional and classic.gating


def test_fisher_of_a_regression_output_is_its_mean_squared_gradient() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    x = torch.randn(7, 3)
    mask = torch.ones(7, 1, dtype=torch.bool)
    expected = torch.zeros(sum(p.numel() for p in model.parameters()))
    for xi in x:
        grads = torch.autograd.grad(model(xi[None])[0, 0], list(model.parameters()))
        expected += torch.cat([g.reshape(-1) for g in grads]) ** 2
    expected /= x.shape[0]
    for backend in ("linear", "vmap"):
        got = diagonal_fisher(model, x, mask, backend=backend, regression=True)
        torch.testing.assert_close(got, expected)


# -- refusals ------------------------------------------------------------------------------------

def test_a_classifying_method_is_refused_naming_those_that_regress() -> None:
    with pytest.raises(ConfigError) as err:
        check_methods(["none", "icarl"], "class", target="log10-icc")
    message = str(err.value)
    assert message.startswith("method icarl classifies and cannot predict log10-icc")
    assert "none, joint, ewc, online-ewc, si, lwf" in message and "bir" in message


@pytest.mark.parametrize(("args", "pattern"), [
    (["--methods", "er"], r"method er classifies and cannot predict log10-icc; methods that "
                          r"regress: none, joint"),
    (["--methods", "none", "--protocol", "split-digits"],
     r"target log10-icc is the compliance current of RRAM cycles; protocol split-digits"),
    (["--methods", "none", "--scenario", "task"], r"use scenario class or domain"),
    (["--methods", "none", "--chip", "rram-4bit"], r"runs digitally only"),
    (["--methods", "none", "--target", "icc"], r"bad value for target"),
])
def test_cli_refusals_are_one_line(tmp_path, args: list[str], pattern: str) -> None:
    out = tmp_path / "never"
    args = ["--target", "log10-icc", *args] if "--target" not in args else args
    result = runner.invoke(app, ["compare", "--protocol", "rram-compliance", *args,
                                 "--out", str(out)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert re.search(pattern, text), text
    assert not out.exists()


def test_measured_directory_regression_end_to_end(tmp_path) -> None:
    from tests.measured_files import write_table_dir

    data_dir = write_table_dir(tmp_path / "sweeps")
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "run", "--data", str(data_dir), "--target", "log10-icc", "--method", "bir",
        "--n-tasks", "2", "--iters", "20", "--hidden", "16", "--threads", "1",
        "--set", "method.z_dim=3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "bir" / "seed-1" / "metrics.json").read_text())
    assert metrics["target"] == "log10-icc" and len(metrics["regression"]["mae_matrix"]) == 2
    assert metrics["output_names"] == ["10uA", "46.4uA", "215uA", "1mA"]
