"""The table and figures of a sweep: one row per (point, method), accuracy against each axis."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birram import io
from birram.report import percent

if TYPE_CHECKING:
    from birram.sweep_run import SweepResult

COLUMNS = ["average_accuracy_mean", "average_accuracy_se", "bwt_mean", "forgetting_mean",
           "wall_seconds_mean"]


def sweep_rows(result: SweepResult) -> list[dict[str, Any]]:
    """One row per (point, method), with the point's settings; failed cells are named."""
    rows = []
    for point in result.points:
        summary = result.summaries.get(point.label)
        for method in point.config.methods:
            failed = [msg for cell, msg in result.failures.items()
                      if cell.point == point.label and cell.method == method]
            row: dict[str, Any] = {"point": point.label, **point.settings, "method": method}
            if summary is None or failed:
                row["status"] = ("failed: " + failed[0]) if failed else \
                    "incomplete: another cell of this point failed"
            else:
                m = summary["methods"][method]
                row.update({k: m[k] for k in COLUMNS})
                row["per_seed"] = m["per_seed"]
                row["status"] = "ok"
            rows.append(row)
    return rows


def settings_of(result: SweepResult) -> list[str]:
    """Every setting some point sets, in the order first met."""
    seen: dict[str, None] = {}
    for point in result.points:
        seen.update(dict.fromkeys(point.settings))
    return list(seen)


def write_sweep_report(result: SweepResult) -> None:
    out, rows, settings = result.out_dir, sweep_rows(result), settings_of(result)
    cells = {"total": result.reused + result.ran + len(result.failures),
             "reused": result.reused, "ran": result.ran, "failed": len(result.failures)}
    io.write_json(out / "sweep_results.json", {"settings": settings, "cells": cells,
                                               "rows": rows})
    io.write_text(out / "sweep_results.csv", csv_table(rows, settings))
    io.write_text(out / "sweep_results.md", markdown_table(rows, settings))
    for setting in settings:
        if len({_key(p.settings.get(setting)) for p in result.points}) > 1:
            plot_against(rows, settings, setting, out / f"sweep_{setting}.png",
                         result.points[0].config.data.protocol)


def _key(value: Any) -> str:
    return repr(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else ""
    text = str(value)
    return f'"{text}"' if ("," in text or '"' in text) else text


def csv_table(rows: list[dict[str, Any]], settings: list[str]) -> str:
    header = ["point", *settings, "method", *COLUMNS, "status"]
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join(_cell(row.get(k)) for k in header))
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[dict[str, Any]], settings: list[str]) -> str:
    header = [*settings, "method", "avg acc % (± s.e.)", "BWT", "forgetting", "wall s", "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        values = [str(row.get(s, "")) for s in settings] + [row["method"]]
        if row["status"] != "ok":
            values += [row["status"], "", "", "", ""]
        else:
            se = row["average_accuracy_se"]
            values += [percent(row["average_accuracy_mean"])
                       + ("" if se is None else f" ± {percent(se)}"),
                       f"{100 * row['bwt_mean']:+.1f}", f"{100 * row['forgetting_mean']:.1f}",
                       f"{row['wall_seconds_mean']:.1f}", str(len(row["per_seed"]))]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def plot_against(rows: list[dict[str, Any]], settings: list[str], setting: str, path: Path,
                 protocol: str) -> None:
    """Average accuracy against ``setting``: one line per method (and per value of the other
    settings), error bars one standard error over seeds."""
    from birram.report import plt, save_figure

    others = [s for s in settings if s != setting]
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok" and setting in row:
            label = ", ".join([row["method"], *(f"{s.split('.')[-1]}={row.get(s)}"
                                                for s in others)])
            lines[label].append(row)
    values = list(dict.fromkeys(_key(r[setting]) for r in rows if setting in r))
    raw = {_key(r[setting]): r[setting] for r in rows if setting in r}
    numeric = _numeric(list(raw.values()))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, points in lines.items():
        points = sorted(points, key=lambda r: r[setting] if numeric else values.index(
            _key(r[setting])))
        x = [p[setting] if numeric else values.index(_key(p[setting])) for p in points]
        y = [100 * p["average_accuracy_mean"] for p in points]
        err = [0.0 if p["average_accuracy_se"] is None else 100 * p["average_accuracy_se"]
               for p in points]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
    if numeric:
        positive = [v for v in raw.values() if v > 0]
        if len(positive) == len(raw) and max(positive) / min(positive) >= 10:
            ax.set_xscale("log")
    else:
        ax.set_xticks(range(len(values)), [str(raw[v]) for v in values])
    ax.set_xlabel(setting)
    ax.set_ylabel("average accuracy after the last task (%)")
    ax.set_title(f"{protocol}: accuracy against {setting.split('.')[-1]}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
