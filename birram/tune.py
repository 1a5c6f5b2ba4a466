"""Hyperparameter search with Optuna (TPE, pruning after each task), with held-out seeds.

The search trains one method on the search seeds; its objective is the average accuracy after
the last task, averaged over those seeds. After each task the loop reports the average accuracy
so far (a :class:`PruneAfterTask` hook), and Optuna's Wilcoxon pruner stops a trial that is
clearly worse than the best one over the same tasks (see :func:`make_pruner`). The best
setting and the preset's own setting are then re-run on
other seeds, disjoint from the search seeds, and both figures are reported: the search figure
of the best trial is optimistic (it was selected on those seeds); the held-out one is not.

Layout of a tune directory::

    tune.json                   what is searched, on which seeds, over which configuration
    optuna.journal              Optuna's own storage: the search resumes from it
    trials/p-<digest>/          one experiment directory per distinct setting tried
    eval/p-<digest>/            the best and the preset's setting on the held-out seeds
    tune_results.json/.md       every trial, the best setting, and both figures
    tune_<setting>.png          objective against each searched setting

Each trial and evaluation is an ordinary experiment directory whose runs resume at task
boundaries, so an interrupted search continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from birram import io, rundir
from birram.config import RunConfig, build_config, check_setting, deep_update, load_preset
from birram.errors import ConfigError, DataError, TrainingDiverged
from birram.methods.base import Context, Method
from birram.sweep import nested, parse_value
from birram.train import LoopHooks

RECORD = "tune.json"
JOURNAL = "optuna.journal"
Kind = Literal["float", "log", "int", "choice"]
KINDS = ("float", "log", "int", "choice")


@dataclass(frozen=True)
class Param:
    setting: str  # e.g. "method.kl_weight"
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"setting": self.setting, "kind": self.kind, "low": self.low, "high": self.high,
                "choices": list(self.choices)}


def import_optuna() -> Any:
    try:
        import optuna
    except ModuleNotFoundError:
        raise ConfigError("birram tune searches with Optuna: pip install birram[tune]") from None
    optuna.logging.set_verbosity(logging.ERROR)  # birram reports each trial itself
    return optuna


def parse_param(text: str) -> Param:
    """``method.kl_weight=log:0.05:2``, ``train.lr=float:1e-4:1e-2``, ``method.z_dim=int:4:32``
    or ``method.gate_by=choice:class,task``."""
    form = "--param expects SECTION.FIELD=KIND:LOW:HIGH (KIND float, log or int) or " \
           "SECTION.FIELD=choice:A,B,..."
    if "=" not in text or ":" not in text.split("=", 1)[1]:
        raise ConfigError(f"{form}, got {text!r}")
    setting, spec = (part.strip() for part in text.split("=", 1))
    check_setting(setting, "--param")
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise ConfigError(f"--param {setting}: unknown kind {kind!r}; use one of "
                          f"{', '.join(KINDS)}")
    if kind == "choice":
        choices = tuple(parse_value(v) for v in rest.split(",") if v.strip())
        if len(choices) < 2 or len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"--param {setting}: choice needs two or more distinct values, "
                              f"got {rest!r}")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise ConfigError(f"--param {setting}: choices must be numbers, strings or "
                              "true/false")
        return Param(setting, "choice", choices=choices)
    bounds = rest.split(":")
    try:
        low, high = (float(b) for b in bounds) if len(bounds) == 2 else (None, None)
    except ValueError:
        low = high = None
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"--param {setting}: {kind} needs two finite numbers LOW:HIGH, got "
                          f"{rest!r}")
    if not low < high:
        raise ConfigError(f"--param {setting}: LOW must be below HIGH, got {low:g} and "
                          f"{high:g}")
    if kind == "log" and low <= 0:
        raise ConfigError(f"--param {setting}: a log range needs LOW > 0, got {low:g}")
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f"--param {setting}: an int range needs whole numbers, got {rest!r}")
    return Param(setting, kind, low, high)  # type: ignore[arg-type]


def candidates(param: Param) -> list[Any]:
    """Values whose validity stands for the whole range: its ends, or every choice."""
    if param.kind == "choice":
        return list(param.choices)
    if param.kind == "int":
        return [int(param.low), int(param.high)]
    return [param.low, param.high]


def check_params(base: dict[str, Any], params: list[Param]) -> None:
    """Every end of every range (and every choice) must make a valid configuration."""
    if len({p.setting for p in params}) != len(params):
        raise ConfigError("--param: each setting may be searched once")
    if not params:
        raise ConfigError("give at least one --param SECTION.FIELD=KIND:LOW:HIGH to search")
    for param in params:
        if param.setting.split(".")[0] in ("methods", "seeds", "name"):
            raise ConfigError(f"--param {param.setting}: use --method, --search-seeds and "
                              "--eval-seeds instead")
        for value in candidates(param):
            try:
                build_config(deep_update(base, nested({param.setting: value})))
            except ConfigError as err:
                raise ConfigError(f"--param {param.setting} (at {value!r}): {err}") from None


def check_seeds(search: list[int], held_out: list[int]) -> None:
    if not search or not held_out:
        raise ConfigError("give --search-seeds and --eval-seeds, e.g. --search-seeds 1,2 "
                          "--eval-seeds 3,4,5")
    shared = sorted(set(search) & set(held_out))
    if shared:
        raise ConfigError(f"--search-seeds and --eval-seeds must be disjoint (both hold "
                          f"{', '.join(map(str, shared))}): a setting chosen on a seed says "
                          "nothing new about it")


def suggest(trial: Any, param: Param) -> Any:
    if param.kind == "choice":
        return trial.suggest_categorical(param.setting, list(param.choices))
    if param.kind == "int":
        return trial.suggest_int(param.setting, int(param.low), int(param.high))
    return trial.suggest_float(param.setting, param.low, param.high, log=param.kind == "log")


def settings_dir(values: dict[str, Any]) -> str:
    """A directory name per distinct setting: a re-tried setting reuses its runs."""
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
    return f"p-{digest[:12]}"


class PruneAfterTask(LoopHooks):
    """Report the average accuracy so far after every task; stop the trial if Optuna says so.

    Steps count tasks across the search seeds (seed k, task t -> k * n_tasks + t), so every
    trial is compared with the others at the same point of the same seed.
    """

    def __init__(self, trial: Any, seed_index: int, n_tasks: int) -> None:
        self.trial, self.seed_index, self.n_tasks = trial, seed_index, n_tasks

    def task_done(self, method: Method, ctx: Context, accuracies: list[float]) -> None:
        step = self.seed_index * self.n_tasks + ctx.task
        self.trial.report(float(np.mean(accuracies[: ctx.task + 1])), step)
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned after task {ctx.task + 1} of search seed "
                                     f"{self.seed_index + 1}")


@dataclass
class TuneSpec:
    preset: str | None
    settings: dict[str, Any]  # flat fixed settings on top of the preset
    method: str
    params: list[Param]
    search_seeds: list[int]
    eval_seeds: list[int]
    trials: int
    sampler_seed: int = 0

    def base(self, seeds: list[int]) -> dict[str, Any]:
        base = load_preset(self.preset) if self.preset else {}
        return deep_update(base, {**nested(self.settings), "methods": [self.method],
                                  "seeds": seeds})

    def config(self, seeds: list[int], values: dict[str, Any]) -> RunConfig:
        return build_config(deep_update(self.base(seeds), nested(values)))

    def record(self) -> dict[str, Any]:
        return {"method": self.method, "params": [p.as_dict() for p in self.params],
                "search_seeds": self.search_seeds, "eval_seeds": self.eval_seeds,
                "config": self.config(self.search_seeds, {}).model_dump(mode="json")}


def preset_values(spec: TuneSpec) -> dict[str, Any]:
    """What the configuration itself sets for each searched setting (the baseline)."""
    flat = rundir.flat(spec.config(spec.search_seeds, {}).model_dump(mode="json"))
    return {p.setting: flat.get(p.setting) for p in spec.params}


def in_range(param: Param, value: Any) -> bool:
    if param.kind == "choice":
        return value in param.choices
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return param.low <= value <= param.high and (param.kind != "int" or float(value).is_integer())


def check_tune_dir(out: Path, record: dict[str, Any], resume: bool) -> None:
    rundir.check_writable(out)
    if not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith(".")):
        return
    if not resume:
        raise ConfigError(f"{out} already holds a search (or other files); choose another "
                          "--out, or add --resume to continue the search it holds")
    try:
        old = io.read_json_strict(out / RECORD)
    except FileNotFoundError:
        raise ConfigError(f"{out} is not a tune directory (it has no {RECORD}); choose another "
                          "--out") from None
    except (OSError, ValueError) as err:
        raise DataError(f"{out / RECORD} is damaged ({err}); choose another --out") from None
    differences = rundir.config_differences(old, record)
    if differences:
        raise ConfigError(f"{out} holds a search with other settings "
                          f"({'; '.join(differences[:3])}); resume it with its own settings or "
                          "choose another --out")


@dataclass
class TuneResult:
    out_dir: Path
    summary: dict[str, Any]


def run_tune(spec: TuneSpec, out: Path, resume: bool = False,
             on_trial: Any = None) -> TuneResult:
    """The search (resumable), then the best and the preset's setting on the held-out seeds."""
    from birram import run
    from birram.data.registry import load_dataset

    check_seeds(spec.search_seeds, spec.eval_seeds)
    check_params(spec.base(spec.search_seeds), spec.params)
    search_cfg = spec.config(spec.search_seeds, {})
    spec.config(spec.eval_seeds, {})  # the held-out seeds must be valid too
    optuna = import_optuna()
    record = spec.record()
    check_tune_dir(out, record, resume)
    datasets: dict[str, Any] = {}

    def data_for(cfg: RunConfig) -> Any:
        key = json.dumps(cfg.data.model_dump(mode="json"), sort_keys=True)
        if key not in datasets:
            datasets[key] = load_dataset(cfg.data)
        return datasets[key]

    run.prepare_experiment(search_cfg, data_for(search_cfg))  # bad input fails before writing
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / RECORD, record)
    study = open_study(optuna, out, spec)
    baseline = preset_values(spec)

    def objective(trial: Any) -> float:
        values = {p.setting: suggest(trial, p) for p in spec.params}
        cfg = spec.config(spec.search_seeds, values)
        trial_dir = out / "trials" / settings_dir(values)
        trial.set_user_attr("dir", str(trial_dir.relative_to(out)))
        inputs = run.prepare_experiment(cfg, data_for(cfg))
        run.start_experiment_dir(cfg, trial_dir)
        results = []
        try:
            for k, seed in enumerate(cfg.seeds):
                protocol = inputs.protocols[seed]
                results += run.run_method_seed(
                    cfg, spec.method, seed, protocol, trial_dir / spec.method / f"seed-{seed}",
                    extractor=inputs.extractor,
                    extra_hooks=[PruneAfterTask(trial, k, protocol.n_tasks)])
        except TrainingDiverged as err:
            trial.set_user_attr("diverged", str(err))
            raise
        summary = run.finish_experiment(cfg, trial_dir, results, inputs.data_notes)
        return float(summary["methods"][spec.method]["average_accuracy_mean"])

    remaining = spec.trials - len(counted_trials(optuna, study))
    if remaining > 0:
        if not study.trials and all(in_range(p, baseline[p.setting]) for p in spec.params):
            study.enqueue_trial(baseline)  # the preset's own setting is the first trial
        study.optimize(objective, n_trials=remaining, catch=(TrainingDiverged,),
                       callbacks=[lambda s, t: on_trial(t)] if on_trial else None)
    summary = summarise_search(optuna, study, spec, baseline)
    if summary["best"] is None:
        raise TrainingDiverged("no trial completed (every one diverged or was pruned); narrow "
                               "the ranges or lower the learning rate")
    for role in ("best", "baseline"):
        values = summary[role]["values"]
        cfg = spec.config(spec.eval_seeds, values)
        result = run.run_experiment(cfg, out / "eval" / settings_dir(values), data=data_for(cfg))
        m = result.summary["methods"][spec.method]
        summary[role].update(io.finite_or_none({  # one held-out seed: no standard error
            "eval_dir": f"eval/{settings_dir(values)}", "eval_mean": m["average_accuracy_mean"],
            "eval_se": m["average_accuracy_se"], "eval_per_seed": m["per_seed"]}))
    from birram import tune_report

    tune_report.write_tune_report(out, summary, spec)
    return TuneResult(out, summary)


def make_pruner(optuna: Any) -> Any:
    """Optuna's Wilcoxon pruner on the accuracy reported after each task.

    It compares a trial with the best one task by task (a signed-rank test over the steps both
    reported) and stops it once it is worse with p < 0.05. Not the median pruner: that compares
    a trial's *best* value so far, and in continual learning the average accuracy so far is
    highest after the first task, where every setting is near 100 %, so it never prunes; nor
    successive halving, which with few trials keeps only the best one at each rung.
    """
    import warnings

    with warnings.catch_warnings():  # experimental since Optuna 3.6, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.WilcoxonPruner(p_threshold=0.05, n_startup_steps=2)


def open_study(optuna: Any, out: Path, spec: TuneSpec) -> Any:
    """The study in ``out``'s journal; trials a killed search left running are closed as failed
    and their settings queued again (their runs resume at the last finished task)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(out / JOURNAL)))
    n_startup = max(2, min(10, spec.trials // 3))
    study = optuna.create_study(study_name="birram-tune", storage=storage,
                                pruner=make_pruner(optuna),
                                direction="maximize", load_if_exists=True)
    # A resumed search draws new random numbers: the same seed would repeat its first draws.
    study.sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed + len(study.trials),
                                               n_startup_trials=n_startup)
    state = optuna.trial.TrialState
    requeued = set(study.user_attrs.get("requeued", []))
    for trial in study.get_trials(deepcopy=False):
        if trial.state == state.RUNNING:  # the process was killed during this trial
            study.tell(trial.number, state=state.FAIL)
        interrupted = trial.state in (state.RUNNING, state.FAIL) and \
            "diverged" not in trial.user_attrs
        if interrupted and trial.number not in requeued:
            study.enqueue_trial(trial.params)
            requeued.add(trial.number)
    study.set_user_attr("requeued", sorted(requeued))
    return study


def counted_trials(optuna: Any, study: Any) -> list[Any]:
    """Trials that used up the budget: completed, pruned, or diverged (not interrupted)."""
    state = optuna.trial.TrialState
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (state.COMPLETE, state.PRUNED)
            or (t.state == state.FAIL and "diverged" in t.user_attrs)]


def summarise_search(optuna: Any, study: Any, spec: TuneSpec, baseline: dict[str, Any]
                     ) -> dict[str, Any]:
    state = optuna.trial.TrialState
    trials = []
    for t in study.get_trials(deepcopy=False):
        status = {state.COMPLETE: "complete", state.PRUNED: "pruned"}.get(t.state, "failed")
        if t.state == state.FAIL and "diverged" not in t.user_attrs:
            status = "interrupted"
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values \
            else None
        trials.append({"number": t.number, "status": status, "values": t.params,
                       "objective": t.value, "last_reported": last,
                       "tasks_reported": len(t.intermediate_values),
                       "dir": t.user_attrs.get("dir")})
    complete = [t for t in trials if t["status"] == "complete"]
    best = max(complete, key=lambda t: t["objective"], default=None)
    same_as_baseline = [t for t in complete if t["values"] == baseline]
    return {
        "method": spec.method, "params": [p.as_dict() for p in spec.params],
        "search_seeds": spec.search_seeds, "eval_seeds": spec.eval_seeds, "trials": trials,
        "best": None if best is None else {"values": best["values"], "trial": best["number"],
                                           "search_mean": best["objective"]},
        "baseline": {"values": baseline, "search_mean": same_as_baseline[0]["objective"]
                     if same_as_baseline else None},
    }
