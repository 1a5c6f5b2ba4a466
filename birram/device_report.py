"""The report's section on the simulated devices of an RRAM run.

Everything comes from the run's own settings: the feature distributions and overlaps from its
dataset (read from the cache the run filled), the I-V curves from the dataset's own simulation
run for one cycle (so they are the first recorded cycle of the population's first devices), and
the confusion between neighbouring levels from the run's confusion matrices.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from birram.config import RunConfig
from birram.rram import plots
from birram.rram.dataset import RRAMDatasetConfig, RRAMSamples, level_name, load_rram_samples
from birram.rram.separability import neighbour_confusion, neighbour_overlaps

if TYPE_CHECKING:
    from birram.results import SeedResult

CURVE_DEVICES = 12  # devices per level drawn in the I-V figure
FEATURES = [  # (short name, axis label, log unit or None); columns of RRAMSamples.features
    ("R_LRS", "R_LRS at 0.1 V", "Ω"),
    ("R_HRS", "R_HRS at 0.1 V", "Ω"),
    ("V_set", "V_set (V)", None),
    ("V_reset", "V_reset (V)", None),
    ("I_reset", "I_reset", "A"),
]
LOG_COLUMNS = (0, 1, 4)  # stored as natural logs
DISPLAY = {"joint": "Joint", "bir": "BI-R"}
FIGURES = ("devices_iv.png", "devices_features.png", "devices_overlap.png")


def simulate_curves(cfg: RRAMDatasetConfig, per_level: int = CURVE_DEVICES
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The I-V curves of the population's first ``per_level`` devices at every level, along
    their first recorded cycle: the dataset's own simulation, run for one cycle, so the curves
    are exactly the cycles behind the dataset's first samples of those devices.

    Returns the applied voltage ``[steps]``, the currents ``[level, device, steps]`` and each
    device's R_LRS ``[level, device]``.
    """
    from birram.rram.dataset import simulate_population, single_thread
    from birram.rram.integrate import IntegratorOptions

    per_level = min(per_level, cfg.n_devices)
    keep = (torch.arange(cfg.n_levels)[:, None] * cfg.n_devices
            + torch.arange(per_level)).ravel()
    with single_thread() as threads:
        result = simulate_population(cfg, IntegratorOptions(threads=threads), cycles=1,
                                     keep_iv=keep)
    assert result.iv_current is not None
    currents = result.iv_current[0].numpy().T.reshape(cfg.n_levels, per_level, -1)
    r_lrs = result.features["r_lrs_ohm"][0][keep].numpy().reshape(cfg.n_levels, per_level)
    return result.iv_volts.numpy(), currents, r_lrs


def representative(r_lrs: np.ndarray) -> np.ndarray:
    """Per level, the device whose R_LRS is closest to the level's median (in log)."""
    log_r = np.log(r_lrs)
    return np.abs(log_r - np.median(log_r, axis=1, keepdims=True)).argmin(1)


def level_confusions(results: list[SeedResult], method: str, names: list[str]) -> np.ndarray | None:
    """Neighbour confusion of ``method`` in level order (mean over its runs), or None when it
    did not run or its outputs are not the levels (the domain scenario)."""
    rows = []
    for r in results:
        if r.method != method:
            continue
        outputs = list(r.metrics["output_names"])
        if sorted(outputs) != sorted(names):
            return None
        order = [outputs.index(name) for name in names]  # output position of each level
        rows.append(neighbour_confusion(r.confusion[np.ix_(order, order)]))
    return np.mean(rows, axis=0) if rows else None


def _feature_values(samples: RRAMSamples) -> list[np.ndarray]:
    f = samples.features.astype(float)
    return [np.exp(f[:, c]) if c in LOG_COLUMNS else f[:, c] for c in range(f.shape[1])]


def _describe(cfg: RRAMDatasetConfig, samples: RRAMSamples, view: str) -> str:
    failed = 100 * (1 - float(samples.reached_compliance.mean()))
    slope = plots.power_law_exponent(cfg.levels_a[samples.labels], np.exp(samples.features[:, 0]))
    return (
        f"{cfg.n_devices} simulated devices (parameter set `{cfg.params}`, variability scale "
        f"{cfg.variability_scale:g}, {cfg.compliance_mode} compliance; {cfg.n_train_devices} "
        f"for training, {cfg.n_test_devices} for testing, split by device), each cycled "
        f"{cfg.cycles} times at each of {cfg.n_levels} compliance currents from "
        f"{plots.current_label(cfg.icc_min_a)} to {plots.current_label(cfg.icc_max_a)}: "
        f"{len(samples.labels)} recorded SET/RESET cycles, of which {failed:.1f} % did not "
        f"reach the compliance current by {cfg.v_set_max:g} V (kept, as a measurement campaign "
        f"would). Over all cycles R_LRS scales as I_CC^{slope:.2f}. The learners saw the "
        f"{'five features' if view == 'features' else 'RESET I-V trace'} of each cycle.")


def _overlap_table(overlaps: np.ndarray, levels_a: np.ndarray,
                   confusions: dict[str, np.ndarray]) -> str:
    header = ["levels", *(name for name, _, _ in FEATURES), "least overlap",
              *(f"{DISPLAY[m]} confuses %" for m in confusions)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for k in range(overlaps.shape[0]):
        cells = [f"{plots.current_label(levels_a[k])} vs {plots.current_label(levels_a[k + 1])}",
                 *(f"{100 * v:.0f}" for v in overlaps[k]), FEATURES[int(overlaps[k].argmin())][0],
                 *(f"{100 * c[k]:.1f}" for c in confusions.values())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _overlap_summary(overlaps: np.ndarray, levels_a: np.ndarray,
                     confusions: dict[str, np.ndarray]) -> str:
    best = overlaps.min(1)  # per pair, the overlap of its most telling feature
    worst = int(best.argmax())
    pair = (f"{plots.current_label(levels_a[worst])} and "
            f"{plots.current_label(levels_a[worst + 1])}")
    text = (f"The hardest neighbours are {pair}: even their least overlapping feature "
            f"({FEATURES[int(overlaps[worst].argmin())][0]}) shares {100 * best[worst]:.0f} % "
            f"of its histogram; across all neighbouring pairs the least overlapping feature "
            f"shares {100 * best.min():.0f}-{100 * best.max():.0f} %.")
    if "joint" in confusions:
        joint = confusions["joint"]
        hardest = int(joint.argmax())
        text += (f" Joint training, which sees all data, gives {100 * joint.mean():.1f} % of a "
                 f"neighbouring pair's test cycles to the other level on average, most for "
                 f"{plots.current_label(levels_a[hardest])} and "
                 f"{plots.current_label(levels_a[hardest + 1])} ({100 * joint[hardest]:.1f} %).")
    return text


def write_device_section(out_dir: Path, cfg: RunConfig, results: list[SeedResult]) -> str:
    """Write the device figures into ``out_dir`` and return the section's Markdown."""
    rram = RRAMDatasetConfig(**cfg.data.rram)
    samples = load_rram_samples(rram)
    levels_a = rram.levels_a
    volts, currents, r_lrs = simulate_curves(rram)
    plots.iv_by_level(volts, currents, representative(r_lrs), levels_a,
                      out_dir / FIGURES[0],
                      f"first recorded DC cycle of {currents.shape[1]} devices per compliance "
                      "level (the dataset's first samples of these devices)")
    values = _feature_values(samples)
    plots.feature_violins([(label, v, unit) for (_, label, unit), v in zip(FEATURES, values)],
                          samples.labels, levels_a, samples.reached_compliance,
                          out_dir / FIGURES[1],
                          f"switching features per compliance level ({len(samples.labels)} "
                          "cycles, train and test devices)")
    overlaps = neighbour_overlaps(samples.features.astype(float), samples.labels, rram.n_levels)
    plots.overlap_heatmap(overlaps, [name for name, _, _ in FEATURES], levels_a,
                          out_dir / FIGURES[2])
    names = [level_name(float(a)) for a in levels_a]
    confusions = {m: c for m in ("joint", "bir")
                  if (c := level_confusions(results, m, names)) is not None}
    return "\n".join([
        "## The simulated devices", "",
        _describe(rram, samples, cfg.data.view), "",
        f"![I-V curves per compliance level]({FIGURES[0]})", "",
        f"![feature distributions per compliance level]({FIGURES[1]})", "",
        "How much neighbouring levels overlap. The feature columns give the overlap "
        "coefficient in % (the area two levels' histograms share: 0 apart, 100 identical, "
        "over all cycles); \"confuses\" is the share of the two levels' test cycles that a "
        "learner, after the last task, gave to the other of the two (both directions "
        "averaged, mean over runs).", "",
        _overlap_table(overlaps, levels_a, confusions),
        _overlap_summary(overlaps, levels_a, confusions), "",
        f"![overlap of neighbouring levels]({FIGURES[2]})", "",
    ])
