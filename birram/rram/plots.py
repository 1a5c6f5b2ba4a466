"""Figures of simulated devices: I-V curves, R_LRS vs compliance, feature distributions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from birram.report import save_figure  # noqa: E402


def current_label(icc_a: float) -> str:
    return f"{icc_a * 1e3:.3g} mA" if icc_a >= 1e-3 else f"{icc_a * 1e6:.3g} uA"


def iv_curves(volts: np.ndarray, currents: np.ndarray, levels_a: np.ndarray, path: Path,
              title: str = "") -> None:
    """``currents[level, cycle_or_device, step]``: one panel per compliance level, log |I|."""
    n = len(levels_a)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False,
                             sharey=True)
    top = 2.0 * max(float(np.abs(currents).max()), float(np.max(levels_a)))
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        for curve in currents[k]:
            ax.semilogy(volts, np.maximum(np.abs(curve), 1e-12), lw=0.7, alpha=0.6)
        ax.axhline(levels_a[k], color="k", ls=":", lw=0.8)
        ax.set_title(f"I_CC = {current_label(levels_a[k])}", fontsize=9)
        ax.set_xlabel("V (V)")
        ax.set_ylim(1e-9, top)
        if k % cols == 0:
            ax.set_ylabel("|I| (A)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def iv_overlay(volts: np.ndarray, currents: np.ndarray, levels_a: np.ndarray, path: Path,
               title: str = "") -> None:
    """One I-V cycle per compliance level on a single log-current axis (README figure)."""
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(levels_a)))
    for k, level in enumerate(levels_a):
        ax.semilogy(volts, np.maximum(np.abs(currents[k]), 1e-12), color=colours[k], lw=1.1,
                    label=current_label(level))
    ax.set_xlabel("applied voltage (V)")
    ax.set_ylabel("|I| (A)")
    ax.set_ylim(1e-9, 2.0 * max(float(np.abs(currents).max()), float(np.max(levels_a))))
    ax.legend(title="I_CC", fontsize=7, ncol=2)
    ax.set_title(title or "simulated DC cycles")
    fig.tight_layout()
    save_figure(fig, path)


def r_lrs_vs_icc(icc_a: np.ndarray, r_lrs: np.ndarray, path: Path,
                 slope: float | None = None) -> None:
    """Log-log scatter of R_LRS against I_CC with the fitted power law."""
    fig, ax = plt.subplots(figsize=(4.8, 3.8))
    ax.loglog(icc_a, r_lrs, ".", alpha=0.15, ms=3)
    levels = np.unique(icc_a)
    medians = np.array([np.median(r_lrs[icc_a == lv]) for lv in levels])
    ax.loglog(levels, medians, "o-", color="k", label="median")
    ax.loglog(levels, 0.4 / levels, "--", color="grey", label="0.4 V / I_CC")
    ax.set_xlabel("compliance current I_CC (A)")
    ax.set_ylabel("R_LRS at 0.1 V (ohm)")
    if slope is not None:
        ax.set_title(f"R_LRS ~ I_CC^{slope:.2f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def feature_distributions(features: dict[str, np.ndarray], labels: np.ndarray,
                          levels_a: np.ndarray, path: Path) -> None:
    """Histograms of each feature, one colour per compliance level."""
    names = list(features)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(levels_a)))
    for ax, name in zip(axes, names):
        values = features[name]
        log = name.startswith(("r_", "i_"))
        data = np.log10(np.abs(values)) if log else values
        bins = np.linspace(np.nanmin(data), np.nanmax(data), 40)
        for k in range(len(levels_a)):
            ax.hist(data[labels == k], bins=bins, color=colours[k], alpha=0.5)
        ax.set_xlabel(f"log10 {name}" if log else name, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def power_law_exponent(icc_a: np.ndarray, r_lrs: np.ndarray) -> float:
    """Slope of log R_LRS against log I_CC (least squares over all samples)."""
    x, y = np.log(icc_a), np.log(r_lrs)
    return float(np.polyfit(x, y, 1)[0])


def wordline_sweep(v_wl: np.ndarray, r_ohm: np.ndarray, i_peak_a: np.ndarray,
                   i_sat_a: np.ndarray, r_free_ohm: float, path: Path, title: str = "",
                   points: tuple[np.ndarray, np.ndarray] | None = None,
                   curve_label: str = "simulated", points_label: str = "measured") -> None:
    """Resistance after SET and peak SET current against word-line voltage (1T1R); ``points``
    (V_WL, R) are drawn as markers over the curve."""
    fig, (ax_r, ax_i) = plt.subplots(1, 2, figsize=(9.0, 3.8))
    if points is not None:
        ax_r.semilogy(*points, "o", color="tab:orange", ms=4, label=points_label)
    ax_r.semilogy(v_wl, r_ohm, "-", color="k", lw=1.4, label=curve_label)
    ax_r.axhline(r_free_ohm, color="grey", ls="--", lw=0.9, label="without transistor")
    ax_r.set_xlabel("word-line voltage V_WL (V)")
    ax_r.set_ylabel("R after SET, read at V_read (ohm)")
    ax_r.legend(fontsize=8)
    ax_i.semilogy(v_wl, i_peak_a, "-", color="k", lw=1.4, label="peak SET current")
    ax_i.semilogy(v_wl, np.maximum(i_sat_a, 1e-12), ":", color="tab:blue", lw=1.2,
                  label="transistor saturation current")
    ax_i.set_ylim(0.3 * max(float(np.min(i_peak_a)), 1e-12), 3 * float(np.max(i_peak_a)))
    ax_i.set_xlabel("word-line voltage V_WL (V)")
    ax_i.set_ylabel("current (A)")
    ax_i.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _level_colours(n: int) -> np.ndarray:
    return plt.cm.viridis(np.linspace(0, 0.9, n))


def iv_by_level(volts: np.ndarray, currents: np.ndarray, representative: np.ndarray,
                levels_a: np.ndarray, path: Path, title: str = "") -> None:
    """One panel per compliance level: every simulated device thin and grey (the spread), the
    representative device (``representative[level]``, an index into axis 1) in colour.

    ``currents[level, device, step]`` along one full DC cycle with applied voltage ``volts``.
    """
    n = len(levels_a)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols, 2.5 * rows + 0.6), squeeze=False,
                             sharex=True, sharey=True)
    top = 2.0 * max(float(np.abs(currents).max()), float(np.max(levels_a)))
    colours = _level_colours(n)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        others = np.delete(np.maximum(np.abs(currents[k]), 1e-12), representative[k], axis=0)
        # one collection for the spread: far faster to draw than a line per device
        ax.add_collection(LineCollection([np.column_stack([volts, c]) for c in others],
                                         colors="0.6", linewidths=0.5, alpha=0.5))
        ax.semilogy(volts, np.maximum(np.abs(currents[k, representative[k]]), 1e-12),
                    color=colours[k], lw=1.4)
        ax.axhline(levels_a[k], color="k", ls=":", lw=0.8)
        ax.set_title(f"I_CC = {current_label(levels_a[k])}", fontsize=9)
        ax.set_ylim(1e-9, top)
        ax.yaxis.set_minor_locator(NullLocator())
        ax.grid(alpha=0.3)
        if k % cols == 0:
            ax.set_ylabel("|I| (A)")
        if k >= n - cols:
            ax.set_xlabel("applied voltage (V)")
            ax.xaxis.set_tick_params(labelbottom=True)
    handles = [plt.Line2D([], [], color=colours[n // 2], lw=1.4),
               plt.Line2D([], [], color="0.6", lw=0.8),
               plt.Line2D([], [], color="k", ls=":", lw=0.8)]
    fig.legend(handles, ["representative device (median R_LRS)", "other devices",
                         "compliance current"], loc="lower center", ncol=3, fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    # fixed margins: tight_layout over 10 log axes costs seconds
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.2 if rows == 1 else 0.14, top=0.9,
                        wspace=0.08, hspace=0.3)
    save_figure(fig, path)


def _log_ticks(ax: plt.Axes, unit: str) -> None:
    """Ticks at 1-2-5 values on an axis that holds log10 values, labelled in SI units."""
    from matplotlib.ticker import EngFormatter, FixedLocator, FuncFormatter

    low, high = ax.get_ylim()
    decades = np.arange(np.floor(low), np.ceil(high) + 1)
    for mantissas in ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,)):
        ticks = [v for d in decades for m in mantissas
                 if low <= (v := d + np.log10(m)) <= high]
        if len(ticks) <= 7:
            break
    eng = EngFormatter(unit=unit, places=0)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    # "u" for micro, as in every other birram label
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: eng(10.0 ** v).replace("µ", "u")))
    ax.yaxis.set_minor_locator(FixedLocator([]))


def feature_violins(panels: list[tuple[str, np.ndarray, str | None]], labels: np.ndarray,
                    levels_a: np.ndarray, reached: np.ndarray, path: Path,
                    title: str = "") -> None:
    """Violin plots per compliance level of each feature, plus the share of cycles that
    reached the compliance current.

    ``panels``: ``(axis label, values, log unit)``; with a unit the values are drawn on a log
    scale (log10 of the magnitude) with ticks in that unit, else linearly.
    """
    n = len(levels_a)
    cols = 3
    rows = (len(panels) + 1 + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(13.5, 3.6 * rows), squeeze=False)
    colours = _level_colours(n)
    positions = np.arange(1, n + 1)
    names = [current_label(a) for a in levels_a]
    for ax, (label, values, unit) in zip(axes.flat, panels):
        data = np.log10(np.abs(values)) if unit else np.asarray(values, dtype=float)
        groups = [data[(labels == k) & np.isfinite(data)] for k in range(n)]
        present = [k for k in range(n) if groups[k].size > 1]
        parts = ax.violinplot([groups[k] for k in present], positions=positions[present],
                              widths=0.8, showmedians=True, showextrema=False)
        for k, body in zip(present, parts["bodies"]):
            body.set_facecolor(colours[k])
            body.set_edgecolor("k")
            body.set_linewidth(0.4)
            body.set_alpha(0.75)
        parts["cmedians"].set_color("k")
        ax.set_ylabel(label + (" (log scale)" if unit else ""), fontsize=9)
        if unit:
            _log_ticks(ax, unit)
        ax.grid(alpha=0.3, axis="y")
    ax = axes.flat[len(panels)]
    share = [100 * float(reached[labels == k].mean()) if (labels == k).any() else 0.0
             for k in range(n)]
    ax.bar(positions, share, color=colours, width=0.7)
    ax.set_ylim(0, 105)
    ax.set_ylabel("cycles reaching I_CC (%)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    for ax in axes.flat[len(panels) + 1:]:
        ax.axis("off")
    for ax in axes.flat[:len(panels) + 1]:
        ax.set_xticks(positions, names, rotation=45, ha="right", fontsize=8)
        ax.set_xlabel("compliance current I_CC", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def overlap_heatmap(overlaps: np.ndarray, feature_labels: list[str], levels_a: np.ndarray,
                    path: Path, title: str = "") -> None:
    """``overlaps[pair, feature]`` as a heatmap: columns are neighbouring level pairs."""
    pairs = [f"{current_label(levels_a[k])}\nvs {current_label(levels_a[k + 1])}"
             for k in range(len(levels_a) - 1)]
    fig, ax = plt.subplots(figsize=(1.2 + 0.95 * len(pairs), 1.2 + 0.55 * len(feature_labels)))
    image = ax.imshow(100 * overlaps.T, vmin=0, vmax=100, cmap="magma_r", aspect="auto")
    for p in range(overlaps.shape[0]):
        for f in range(overlaps.shape[1]):
            ax.text(p, f, f"{100 * overlaps[p, f]:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if overlaps[p, f] > 0.55 else "black")
    ax.set_xticks(range(len(pairs)), pairs, fontsize=7)
    ax.set_yticks(range(len(feature_labels)), feature_labels, fontsize=8)
    ax.set_xlabel("neighbouring compliance levels")
    fig.colorbar(image, ax=ax, label="overlap coefficient (%)")
    ax.set_title(title or "overlap of neighbouring levels per feature", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
