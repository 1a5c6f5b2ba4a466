"""Tables and figures of an experiment: CSV, Markdown, PNG (written atomically)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from birram import io  # noqa: E402
from birram.config import RunConfig  # noqa: E402

if TYPE_CHECKING:
    from birram.results import SeedResult


def percent(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def as_floats(values: list[float | None]) -> np.ndarray:
    """A list read from strict JSON (undefined values are null) as floats with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def decades(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def regression_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Rows for a regression target: the MAE (decades) and R^2 first, then the accuracy of the
    nearest level and the transfer figures it gives."""
    rows = []
    for name, m in summary["methods"].items():
        se = m["mae_se"]
        rows.append([
            name,
            decades(m["mae_mean"]) + ("" if se is None else f" ± {decades(se)}"),
            " / ".join(decades(a) for a in m["mae_curve_mean"]),
            "n/a" if m["r2_mean"] is None else f"{m['r2_mean']:.3f}",
            percent(m["average_accuracy_mean"]),
            f"{100 * m['bwt_mean']:+.1f}",
            f"{m['wall_seconds_mean']:.1f}",
            f"{m['iterations_per_second_mean']:.0f}",
        ])
    return rows


REGRESSION_HEADER = ["method", "MAE dec (± s.e.)", "MAE dec after each task", "R²",
                     "nearest-level acc %", "BWT (level acc)", "wall s", "it/s"]


def table_header(summary: dict[str, Any]) -> list[str]:
    return REGRESSION_HEADER if "target" in summary else TABLE_HEADER


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    if "target" in summary:
        return regression_rows(summary)
    rows = []
    for name, m in summary["methods"].items():
        se = m["average_accuracy_se"]
        rows.append([
            name,
            percent(m["average_accuracy_mean"])
            + ("" if se is None or math.isnan(se) else f" ± {percent(se)}"),
            " / ".join(percent(a) for a in m["curve_mean"]),
            f"{100 * m['bwt_mean']:+.1f}",
            f"{100 * m['forgetting_mean']:.1f}",
            f"{m['wall_seconds_mean']:.1f}",
            f"{m['iterations_per_second_mean']:.0f}",
        ])
    return rows


TABLE_HEADER = ["method", "avg acc % (± s.e.)", "avg acc after each task %", "BWT", "forgetting",
                "wall s", "it/s"]


def markdown_table(summary: dict[str, Any]) -> str:
    header = table_header(summary)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    return "\n".join(lines) + "\n"


def csv_table(summary: dict[str, Any]) -> str:
    regression = "target" in summary
    lines = ["method,average_accuracy_mean,average_accuracy_se,bwt,forgetting,fwt,wall_seconds,"
             "iterations_per_second" + (",mae_mean,mae_se,r2_mean" if regression else "")]
    keys = ("average_accuracy_mean", "average_accuracy_se", "bwt_mean", "forgetting_mean",
            "fwt_mean", "wall_seconds_mean", "iterations_per_second_mean")
    keys += ("mae_mean", "mae_se", "r2_mean") if regression else ()
    for name, m in summary["methods"].items():
        lines.append(",".join([name] + [_csv_number(m[k]) for k in keys]))
    return "\n".join(lines) + "\n"


def _csv_number(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6f}"


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Write ``fig`` atomically in the format its suffix names (PNG by default), then close it."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    io.write_with(path, lambda f: fig.savefig(f, format=fmt, dpi=130, bbox_inches="tight"))
    plt.close(fig)


def plot_accuracy_curves(summary: dict[str, Any], path: Path, title: str,
                         ylabel: str = "average accuracy on tasks so far (%)") -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, m in summary["methods"].items():
        mean = 100 * np.array(m["curve_mean"])
        se = 100 * as_floats(m["curve_se"])
        x = np.arange(1, mean.size + 1)
        ax.plot(x, mean, marker="o", label=name)
        if not np.isnan(se).all():
            ax.fill_between(x, mean - se, mean + se, alpha=0.2)
    ax.set_xlabel("number of tasks learned")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.set_xticks(np.arange(1, len(next(iter(summary["methods"].values()))["curve_mean"]) + 1))
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2)
    save_figure(fig, path)


def plot_accuracy_matrix(r: np.ndarray, path: Path, title: str) -> None:
    t = r.shape[0]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * t, 0.8 + 0.7 * t))
    image = ax.imshow(100 * r, vmin=0, vmax=100, cmap="viridis")
    for i in range(t):
        for j in range(t):
            ax.text(j, i, f"{100 * r[i, j]:.0f}", ha="center", va="center",
                    color="white" if r[i, j] < 0.6 else "black", fontsize=8)
    ax.set_xticks(range(t), [str(j + 1) for j in range(t)])
    ax.set_yticks(range(t), [str(i + 1) for i in range(t)])
    ax.set_xlabel("tested on task")
    ax.set_ylabel("after training task")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    save_figure(fig, path)


def plot_mae_matrix(mae: np.ndarray, path: Path, title: str) -> None:
    """MAE (decades) on each task after training each task; darker is worse."""
    t = mae.shape[0]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * t, 0.8 + 0.7 * t))
    top = max(float(mae.max()), 1e-9)
    image = ax.imshow(mae, vmin=0, vmax=top, cmap="magma_r")
    for i in range(t):
        for j in range(t):
            ax.text(j, i, f"{mae[i, j]:.2f}", ha="center", va="center",
                    color="white" if mae[i, j] > 0.6 * top else "black", fontsize=7)
    ax.set_xticks(range(t), [str(j + 1) for j in range(t)])
    ax.set_yticks(range(t), [str(i + 1) for i in range(t)])
    ax.set_xlabel("tested on task")
    ax.set_ylabel("after training task")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="MAE of log10 I_CC (decades)")
    save_figure(fig, path)


def plot_confusion(conf: np.ndarray, names: list[str], path: Path, title: str) -> None:
    n = conf.shape[0]
    totals = conf.sum(1, keepdims=True)
    frac = np.divide(conf, totals, out=np.zeros(conf.shape, dtype=float), where=totals > 0)
    fig, ax = plt.subplots(figsize=(1.5 + 0.5 * n, 1.2 + 0.5 * n))
    image = ax.imshow(100 * frac, vmin=0, vmax=100, cmap="Blues")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if conf[i, j]:
                    ax.text(j, i, f"{100 * frac[i, j]:.0f}", ha="center", va="center",
                            color="white" if frac[i, j] > 0.6 else "black", fontsize=7)
        ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of true class (%)")
    save_figure(fig, path)


def curve_label(cfg: RunConfig) -> str:
    if cfg.data.protocol.startswith("rram"):
        return "normalised current accuracy (%)"
    return "average accuracy on tasks so far (%)"


def write_experiment_report(out_dir: Path, cfg: RunConfig, summary: dict[str, Any],
                            results: list[SeedResult]) -> None:
    """The tables and figures of the learning results (the report page comes last, once the
    on-chip results exist too: ``write_report_page``)."""
    io.write_text(out_dir / "results.md", markdown_table(summary))
    io.write_text(out_dir / "results.csv", csv_table(summary))
    title = f"{cfg.data.protocol}, {cfg.scenario}-incremental"
    plot_accuracy_curves(summary, out_dir / "accuracy_curve.png", title, curve_label(cfg))
    for result in results:
        if result.seed != cfg.seeds[0]:
            continue
        run_dir = out_dir / result.method / f"seed-{result.seed}"
        plot_accuracy_matrix(result.accuracy_matrix, run_dir / "accuracy_matrix.png",
                             f"{result.method}: accuracy matrix (seed {result.seed})")
        plot_confusion(result.confusion, result.metrics["output_names"], run_dir / "confusion.png",
                       f"{result.method}: confusion after the last task")
        if "regression" in result.metrics:
            plot_mae_matrix(np.array(result.metrics["regression"]["mae_matrix"]),
                            run_dir / "mae_matrix.png",
                            f"{result.method}: MAE matrix (seed {result.seed})")


def settings_paragraph(cfg: RunConfig) -> str:
    return (f"{len(cfg.seeds)} seed(s) ({', '.join(map(str, cfg.seeds))}), {cfg.train.iters} "
            f"iterations per task, batch {cfg.train.batch_size}, Adam lr {cfg.train.lr}, "
            f"hidden layers {cfg.train.hidden}. Accuracy is the mean over all tasks after the "
            "last task (± standard error over seeds).")


def learning_section(cfg: RunConfig, summary: dict[str, Any], figures: list[str]) -> str:
    focus = "bir" if "bir" in cfg.methods else cfg.methods[0]
    captions = {
        "accuracy_curve.png": "Accuracy on the tasks seen so far after each task, every method "
                              "(± standard error over seeds where there are several).",
        "accuracy_matrix.png": f"{focus}: accuracy on each task (columns) after training each "
                               f"task (rows), seed {cfg.seeds[0]}.",
        "confusion.png": f"{focus}: true against predicted class over every test set after the "
                         f"last task, seed {cfg.seeds[0]}.",
        "mae_matrix.png": f"{focus}: mean absolute error of log10 I_CC (decades) on each task "
                          f"after training each task, seed {cfg.seeds[0]}.",
    }
    lines = ["## Learning results", "", markdown_table(summary)]
    for f in figures:
        lines += [captions.get(Path(f).name, ""), "", f"![{Path(f).stem}]({f})", ""]
    return "\n".join(lines)


def report_markdown(cfg: RunConfig, summary: dict[str, Any], figures: list[str],
                    devices: str | None = None) -> str:
    """The readable report: the result against the published claim (where one applies), what
    ran, the simulated devices (for RRAM data), the learning results and the on-chip results."""
    from birram.headline import headline

    hardware = summary.get("hardware")
    measured = cfg.data.measured
    source = f"the measured sweeps in `{measured}`" if measured else "simulated devices"
    lines = [f"# {cfg.name}: {cfg.data.protocol}, {cfg.scenario}-incremental", ""]
    if (opening := headline(summary, hardware, source)) is not None:
        lines += [opening, ""]
    lines += [settings_paragraph(cfg), ""]
    if summary.get("data_notes"):
        lines += ["Data: " + " ".join(summary["data_notes"]), ""]
    if devices:
        lines.append(devices)
    lines.append(learning_section(cfg, summary, figures))
    if hardware is not None and cfg.hardware is not None:
        from birram import onchip_report

        lines.append(onchip_report.section(cfg, hardware, heading="##"))
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report_page(out_dir: Path, cfg: RunConfig, summary: dict[str, Any],
                      results: list[SeedResult], describe_devices: bool = True) -> Path:
    """``report.md`` and its self-contained twin ``report.html``.

    ``describe_devices``: add the section on the simulated devices of an RRAM run (never when
    the data did not come from the configured simulated dataset).
    """
    from birram.report_html import write_html

    focus = "bir" if "bir" in cfg.methods else cfg.methods[0]
    seed_dir = f"{focus}/seed-{cfg.seeds[0]}"
    figures = ["accuracy_curve.png", f"{seed_dir}/accuracy_matrix.png",
               f"{seed_dir}/confusion.png"]
    if cfg.target != "class":
        figures.append(f"{seed_dir}/mae_matrix.png")
    devices = None
    if describe_devices and cfg.data.protocol == "rram-compliance" and cfg.data.measured is None:
        from birram.device_report import write_device_section

        devices = write_device_section(out_dir, cfg, results)
    path = out_dir / "report.md"
    io.write_text(path, report_markdown(cfg, summary, figures, devices))
    write_html(path)
    return path
