"""Figures of simulated devices: I-V curves, R_LRS vs compliance, feature distributions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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
