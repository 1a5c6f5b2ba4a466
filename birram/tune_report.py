"""The report of a search: every trial, the best setting, and its held-out figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birram import io
from birram.report import percent

if TYPE_CHECKING:
    from birram.tune import TuneSpec


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={_number(v)}" for k, v in values.items())


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _with_se(mean: float | None, se: float | None) -> str:
    return percent(mean) + ("" if se is None or math.isnan(se) else f" ± {percent(se)}")


def markdown(summary: dict[str, Any]) -> str:
    best, base = summary["best"], summary["baseline"]
    search = ", ".join(map(str, summary["search_seeds"]))
    held_out = ", ".join(map(str, summary["eval_seeds"]))
    lines = [
        f"# Search for {summary['method']}: {len(summary['trials'])} trials",
        "",
        f"Objective: average accuracy after the last task, mean over the search seeds "
        f"({search}). Held-out: the same on seeds {held_out}, never seen by the search "
        "(± standard error over seeds).",
        "",
        "| setting | values | search seeds % | held-out seeds % |",
        "|---|---|---|---|",
        f"| best (trial {best['trial']}) | {_values(best['values'])} | "
        f"{percent(best['search_mean'])} | {_with_se(best['eval_mean'], best['eval_se'])} |",
        f"| the configuration's own | {_values(base['values'])} | "
        f"{percent(base['search_mean'])} | {_with_se(base['eval_mean'], base['eval_se'])} |",
        "",
        "| trial | status | values | objective % | tasks reported |",
        "|---|---|---|---|---|",
    ]
    for t in summary["trials"]:
        objective = percent(t["objective"]) if t["objective"] is not None else (
            f"({percent(t['last_reported'])} when stopped)" if t["last_reported"] is not None
            else "")
        lines.append(f"| {t['number']} | {t['status']} | {_values(t['values'])} | {objective} | "
                     f"{t['tasks_reported']} |")
    return "\n".join(lines) + "\n"


def write_tune_report(out: Path, summary: dict[str, Any], spec: TuneSpec) -> None:
    io.write_json(out / "tune_results.json", summary)
    io.write_text(out / "tune_results.md", markdown(summary))
    for param in spec.params:
        plot_trials(summary, param.setting, param.kind == "log", out / f"tune_{param.setting}.png")


def plot_trials(summary: dict[str, Any], setting: str, log: bool, path: Path) -> None:
    """The objective of every completed trial against ``setting``; the best and the
    configuration's own setting marked, with their held-out figures."""
    from birram.report import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    done = [t for t in summary["trials"] if t["status"] == "complete"]
    stopped = [t for t in summary["trials"] if t["status"] == "pruned" and t["last_reported"]
               is not None]
    numeric = all(isinstance(t["values"].get(setting), (int, float)) for t in done + stopped)
    if not numeric:
        plt.close(fig)
        return
    ax.scatter([t["values"][setting] for t in done], [100 * t["objective"] for t in done],
               color="tab:blue", label="trial (search seeds)")
    if stopped:
        ax.scatter([t["values"][setting] for t in stopped],
                   [100 * t["last_reported"] for t in stopped], marker="x", color="grey",
                   label="pruned (value when stopped)")
    for role, colour in (("best", "tab:red"), ("baseline", "tab:green")):
        entry = summary[role]
        x = entry["values"].get(setting)
        if isinstance(x, (int, float)) and entry.get("eval_mean") is not None:
            se = entry.get("eval_se")
            ax.errorbar([x], [100 * entry["eval_mean"]], yerr=[0 if se is None else 100 * se],
                        marker="D", color=colour, capsize=3,
                        label=f"{'best' if role == 'best' else 'configured'} (held-out seeds)")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(setting)
    ax.set_ylabel("average accuracy after the last task (%)")
    ax.set_title(f"{summary['method']}: search over {setting.split('.')[-1]}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
