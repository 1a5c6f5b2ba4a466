"""birram tune: search spaces, held-out seeds, pruning after a task, and resuming a search."""

import json
import sys

import pytest
from typer.testing import CliRunner

from birram.cli import app
from birram.config import build_config
from birram.errors import ConfigError
from birram.run import run_method_seed
from birram.tune import PruneAfterTask, TuneSpec, check_seeds, parse_param, run_tune
from tests.conftest import blobs

runner = CliRunner()
TINY_RRAM = {"n_levels": 4, "n_train_devices": 6, "n_test_devices": 2, "cycles": 1,
             "trace_points": 16, "sweep_step_v": 0.01}


def test_param_kinds_parse():
    p = parse_param("method.kl_weight=log:0.05:2")
    assert (p.setting, p.kind, p.low, p.high) == ("method.kl_weight", "log", 0.05, 2.0)
    assert parse_param("method.z_dim=int:4:32").kind == "int"
    assert parse_param("method.gate_by=choice:class,task").choices == ("class", "task")


@pytest.mark.parametrize("text, words", [
    ("method.kl_wieght=log:0.1:1", ["kl_wieght", "did you mean"]),
    ("method.kl_weight=log:0:1", ["LOW > 0"]),
    ("method.kl_weight=float:2:1", ["LOW must be below HIGH"]),
    ("method.kl_weight=cubic:1:2", ["unknown kind 'cubic'"]),
    ("method.kl_weight=log:a:1", ["two finite numbers"]),
    ("method.kl_weight=log:1:inf", ["two finite numbers"]),
    ("method.z_dim=int:1.5:4", ["whole numbers"]),
    ("method.gate_by=choice:class", ["two or more"]),
    ("method.kl_weight", ["SECTION.FIELD=KIND:LOW:HIGH"]),
])
def test_bad_params_are_named(text, words):
    with pytest.raises(ConfigError) as err:
        parse_param(text)
    for word in words:
        assert word in str(err.value)


def test_seeds_must_be_disjoint():
    with pytest.raises(ConfigError, match="must be disjoint.*2"):
        check_seeds([1, 2], [2, 3])


@pytest.mark.parametrize("args, words", [
    (["--search-seeds", "1,2", "--eval-seeds", "2,3"], ["disjoint", "2"]),
    (["--param", "method.kl_weight=float:-1:1"], ["method.kl_weight", "greater than 0"]),
    (["--param", "seeds=int:1:3"], ["--search-seeds"]),
])
def test_bad_tune_options_are_one_line(tmp_path, args, words):
    base = ["tune", "--preset", "rram-demo-quick", "--method", "bir", "--out",
            str(tmp_path / "t")]
    if "--param" not in args:
        base += ["--param", "method.kl_weight=log:0.05:2"]
    result = runner.invoke(app, [*base, *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (tmp_path / "t").exists()
    for word in words:
        assert word in result.output


def test_missing_optuna_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    result = runner.invoke(app, ["tune", "--preset", "rram-demo-quick", "--method", "bir",
                                 "--param", "method.kl_weight=log:0.05:2",
                                 "--out", str(tmp_path / "t")])
    assert result.exit_code == 2 and "pip install birram[tune]" in result.output


class AlwaysPrune:
    """A trial that Optuna would stop at the first chance; records what was reported."""

    def __init__(self):
        self.reports = []

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return True


def test_a_pruned_run_stops_after_the_task_it_was_told(tmp_path):
    import optuna

    from birram.data.protocols import split_protocol

    cfg = build_config({"methods": ["none"], "seeds": [1], "data": {"n_tasks": 2},
                        "train": {"iters": 10, "batch_size": 16, "hidden": [8]}})
    protocol = split_protocol(blobs(), "class", n_tasks=2)
    trial = AlwaysPrune()
    with pytest.raises(optuna.TrialPruned, match="after task 1 of search seed 2"):
        run_method_seed(cfg, "none", 1, protocol, tmp_path / "none" / "seed-1",
                        extra_hooks=[PruneAfterTask(trial, 1, 2)])
    assert [step for step, _ in trial.reports] == [2]  # seed index 1, task 0 of 2
    assert not (tmp_path / "none" / "seed-1" / "manifest.json").exists()
    assert (tmp_path / "none" / "seed-1" / "checkpoint.safetensors").exists() is False


def tiny_spec(trials: int) -> TuneSpec:
    return TuneSpec(preset="rram-demo-quick", method="bir",
                    settings={"train.iters": 10, "train.hidden": [8], "data.n_tasks": 2,
                              "data.rram": TINY_RRAM, "method.z_dim": 3},
                    params=[parse_param("method.kl_weight=log:0.05:2")],
                    search_seeds=[1, 2], eval_seeds=[3], trials=trials)


def test_search_reports_best_and_configured_setting_on_held_out_seeds(tmp_path, monkeypatch):
    import birram.run as run_module

    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "tune"
    # A search killed during its third trial...
    original = run_module.run_method_seed
    calls = {"n": 0}

    def killed_in_third_trial(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # two seeds per trial: the first seed of trial 2
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "run_method_seed", killed_in_third_trial)
    with pytest.raises(KeyboardInterrupt):
        run_tune(tiny_spec(trials=3), out)
    monkeypatch.setattr(run_module, "run_method_seed", original)
    # ...resumes: the interrupted setting is tried again, then the rest of the budget.
    result = run_tune(tiny_spec(trials=3), out, resume=True).summary
    trials = result["trials"]
    assert [t["status"] for t in trials] == ["complete", "complete", "interrupted", "complete"]
    assert trials[3]["values"] == trials[2]["values"]  # queued again after the interruption
    assert trials[0]["values"] == {"method.kl_weight": 0.1}  # the preset's own setting first
    assert all(0.05 <= t["values"]["method.kl_weight"] <= 2 for t in trials)
    best = result["best"]
    completed = [t["objective"] for t in trials if t["objective"] is not None]
    assert best["search_mean"] == max(completed)
    assert result["baseline"]["search_mean"] == trials[0]["objective"]
    for role in ("best", "baseline"):  # both re-run on the held-out seed
        assert list(result[role]["eval_per_seed"]) == ["3"]
        saved = json.loads((out / result[role]["eval_dir"] / "config.json").read_text())
        assert saved["seeds"] == [3]
        assert saved["method"]["kl_weight"] == result[role]["values"]["method.kl_weight"]
    assert "held-out seeds %" in (out / "tune_results.md").read_text()
    assert (out / "tune_method.kl_weight.png").stat().st_size > 0
    # A finished search resumed runs no trial again.
    again = run_tune(tiny_spec(trials=3), out, resume=True).summary
    assert len(again["trials"]) == 4 and again["best"] == result["best"]
    # Another search space in the same directory is refused.
    other = tiny_spec(trials=3)
    other.params = [parse_param("method.kl_weight=log:0.1:2")]
    with pytest.raises(ConfigError, match="other settings"):
        run_tune(other, out, resume=True)


# Average accuracy so far after each task (two seeds of five tasks) of three bir settings on
# rram-demo-quick: two good ones, then a poor one, highest after the first task as always.
GOOD = [0.984, 0.841, 0.870, 0.885, 0.894, 0.975, 0.894, 0.897, 0.902, 0.901]
ALSO_GOOD = [0.984, 0.858, 0.882, 0.900, 0.904, 0.975, 0.841, 0.866, 0.887, 0.895]
POOR = [0.988, 0.783, 0.704, 0.665, 0.638, 0.975, 0.780, 0.694, 0.684, 0.617]


def replay(pruner, curves):
    """The step at which each curve was pruned (None: it ran to the end)."""
    import optuna

    study = optuna.create_study(direction="maximize", pruner=pruner)
    stopped = []

    def objective(trial):
        curve = curves[trial.number]
        for step, value in enumerate(curve):
            trial.report(value, step)
            if trial.should_prune():
                stopped.append(step)
                raise optuna.TrialPruned
        stopped.append(None)
        return curve[-1]

    study.optimize(objective, n_trials=len(curves))
    return stopped


def test_the_pruner_stops_a_trailing_setting_part_way():
    import optuna

    from birram.tune import make_pruner

    # The poor setting stops after the second task of the second seed; close ones run on.
    assert replay(make_pruner(optuna), [GOOD, ALSO_GOOD, POOR]) == [None, None, 6]
    assert replay(make_pruner(optuna), [ALSO_GOOD, GOOD, POOR, GOOD]) == [None, None, 6, None]
    # The median pruner compares each trial's best value so far: the first task's, where every
    # setting is near 100 %; it would let the poor setting run to the end.
    median = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    assert replay(median, [GOOD, ALSO_GOOD, POOR]) == [None, None, None]
