"""Accuracy of a trained continual learner on simulated chips, swept over one chip setting.

Three sweeps over an already trained ``(method, ctx)`` (the digital model in ``ctx.model``):

- **levels**: the number of conductance levels per device, with the cell model calibrated for
  each level count (:func:`birram.onchip.cells_for`); everything else from the chip preset;
- **programming noise**: ``programming_noise_scale`` of the preset (0: every device exactly at
  its level's mean conductance);
- **retention**: time since programming at a storage temperature, optionally with global drift
  compensation.

Every point writes the final digital weights onto K fresh chip instances (chip seeds 1..K:
independent fault and programming draws) and reports the average test accuracy over all tasks
after the last task, as mean and standard error over the chips. Results are plain JSON-able
dicts of one shape (a list of series, each a list of points), which the plots read back.
"""

from __future__ import annotations

import copy
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from birram.errors import ConfigError, DataError
from birram.hardware.cells import CellModel
from birram.hardware.chip import ChipConfig
from birram.hardware.deploy import age_model, program_model
from birram.methods.base import Context, Method
from birram.metrics import mean_and_standard_error
from birram.onchip import cells_for, deployed_copy, evaluate_on
from birram.train import evaluate

DEFAULT_LEVELS = (2, 4, 8, 16, 32, 64)
DEFAULT_NOISE_SCALES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
ROOM_TEMP_K = 298.15  # 25 °C
HOT_TEMP_K = 358.15  # 85 °C, the usual retention specification
_DAY_S = 86_400.0
_YEAR_S = 365.25 * _DAY_S
DEFAULT_TIMES_S: dict[str, float] = {
    "1 s": 1.0, "1 min": 60.0, "1 h": 3_600.0, "1 day": _DAY_S, "1 month": _YEAR_S / 12,
    "1 year": _YEAR_S, "10 years": 10 * _YEAR_S,
}
Point = dict[str, Any]


# -- accuracy on one chip ------------------------------------------------------------------------
def digital_accuracy(method: Method, ctx: Context) -> float:
    """Average accuracy over all tasks after the last task, with the digital model."""
    return float(np.mean(evaluate(method, ctx, ctx.protocol.n_tasks - 1)))


def chip_accuracy(method: Method, ctx: Context, chip_model: nn.Module) -> float:
    """Average accuracy over all tasks after the last task, read through ``chip_model``."""
    return float(np.mean(evaluate_on(method, ctx, chip_model, ctx.protocol.n_tasks - 1)))


def programmed_chip(ctx: Context, config: ChipConfig, cells: CellModel) -> nn.Module:
    """A fresh chip of ``config`` holding the digital model's weights, just programmed."""
    chip_model = deployed_copy(ctx.model, config, cells)
    program_model(chip_model, only_changed=True)  # a fresh chip: every non-RESET level is new
    return chip_model


def chip_seeds(chips: int) -> list[int]:
    if not (isinstance(chips, int) and 1 <= chips <= 100):
        raise ConfigError(f"chips={chips!r}; allowed: an integer in [1, 100]")
    return list(range(1, chips + 1))


def point(x: float, per_chip: list[float], label: str | None = None) -> Point:
    mean, se = mean_and_standard_error(per_chip)
    # One chip has no standard error: None (null in JSON), never NaN.
    return {"x": x, "label": label if label is not None else f"{x:g}", "per_chip": per_chip,
            "mean": mean, "se": None if math.isnan(se) else se}


def _result(sweep: str, base: ChipConfig, chips: int, variability_scale: float,
            digital: float, series: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"sweep": sweep, "chip": {k: v for k, v in base.to_dict().items() if k != "seed"},
            "chips": chips, "chip_seeds": chip_seeds(chips),
            "variability_scale": float(variability_scale), "digital_accuracy": digital,
            **extra, "series": series}


# -- the sweeps ----------------------------------------------------------------------------------
def sweep_levels(method: Method, ctx: Context, base: ChipConfig,
                 levels: Sequence[int] = DEFAULT_LEVELS, chips: int = 5,
                 variability_scale: float = 1.0) -> dict[str, Any]:
    """Accuracy against the number of levels per device (cells calibrated for each count)."""
    seeds = chip_seeds(chips)
    points = []
    for n_levels in levels:
        config = base.replace(n_levels=int(n_levels))
        cells = cells_for(config, variability_scale)
        per_chip = [chip_accuracy(method, ctx, programmed_chip(ctx, config.replace(seed=s), cells))
                    for s in seeds]
        points.append(point(int(n_levels), per_chip))
    return _result("levels", base, chips, variability_scale, digital_accuracy(method, ctx),
                   [{"label": "on the chip", "points": points}])


def sweep_programming_noise(method: Method, ctx: Context, base: ChipConfig,
                            scales: Sequence[float] = DEFAULT_NOISE_SCALES, chips: int = 5,
                            variability_scale: float = 1.0) -> dict[str, Any]:
    """Accuracy against the programming-noise scale (the same cells and chips at every point,
    so the points differ only in how far each device lands from its level)."""
    seeds = chip_seeds(chips)
    cells = cells_for(base, variability_scale)
    points = []
    for scale in scales:
        config = base.replace(programming_noise_scale=float(scale))
        per_chip = [chip_accuracy(method, ctx, programmed_chip(ctx, config.replace(seed=s), cells))
                    for s in seeds]
        points.append(point(float(scale), per_chip))
    return _result("programming_noise", base, chips, variability_scale,
                   digital_accuracy(method, ctx), [{"label": "on the chip", "points": points}])


def sweep_retention(method: Method, ctx: Context, base: ChipConfig,
                    times_s: Mapping[str, float] | Sequence[float] = DEFAULT_TIMES_S,
                    temps_k: Sequence[float] = (ROOM_TEMP_K, HOT_TEMP_K), chips: int = 5,
                    variability_scale: float = 1.0,
                    drift_compensation: bool = True) -> dict[str, Any]:
    """Accuracy against time since programming at each storage temperature.

    Each chip is programmed once; every point reads a copy of that just-programmed chip aged
    by its time, so points differ only in drift (the copies start the same read-noise stream).
    With ``drift_compensation`` every curve is repeated with the preset's global drift
    compensation switched on.
    """
    named = dict(times_s) if isinstance(times_s, Mapping) \
        else {f"{t:g} s": float(t) for t in times_s}
    for label, t in named.items():
        if not (math.isfinite(t) and t >= 0):
            raise ConfigError(f"retention time {label}={t!r}; allowed: a finite number >= 0")
    for temp in temps_k:
        if not (math.isfinite(temp) and 0 < temp < 1000):
            raise ConfigError(f"retention temperature {temp!r} K; allowed: (0, 1000) K")
    seeds = chip_seeds(chips)
    cells = cells_for(base, variability_scale)
    series: list[dict[str, Any]] = []
    unaged: list[float] = []
    for compensated in ([False, True] if drift_compensation else [False]):
        config = base.replace(drift_compensation=compensated)
        fresh = [programmed_chip(ctx, config.replace(seed=s), cells) for s in seeds]
        if not compensated:
            unaged = [chip_accuracy(method, ctx, copy.deepcopy(chip)) for chip in fresh]
        for temp in temps_k:
            per_time: dict[str, list[float]] = {label: [] for label in named}
            for chip in fresh:
                for label, t in named.items():
                    aged = copy.deepcopy(chip)
                    age_model(aged, t, float(temp))
                    per_time[label].append(chip_accuracy(method, ctx, aged))
            series.append({
                "label": f"{temp - 273.15:.0f} °C" + (", drift compensated" if compensated
                                                      else ""),
                "temp_k": float(temp), "drift_compensation": compensated,
                "points": [point(named[label], values, label)
                           for label, values in per_time.items()]})
    return _result("retention", base, chips, variability_scale, digital_accuracy(method, ctx),
                   series, unaged=point(0.0, unaged, "just programmed"))


# -- restoring a finished run --------------------------------------------------------------------
SUPPORTED = "bir, dgr, none, ewc, online-ewc, si, lwf, er, joint and the BI-R ablations"


def restore_trained(run_dir: Path, device: str | None = None) -> tuple[Method, Context]:
    """Rebuild a finished run's method and context and load its trained model.

    ``run_dir`` holds ``config.json`` (with ``method_name`` and ``seed``) and the model's
    state dict (``model.safetensors``: tensors only, never unpickled; sealed by the run's
    manifest). Methods whose prediction needs more than the model (iCaRL's class means) are
    refused. A hardware-aware run's model also holds the chip's device buffers; only the
    digital model's own entries (the shadow weights) are loaded.
    """
    from birram import io, rundir
    from birram.config import build_config
    from birram.data.registry import build_protocol, load_dataset
    from birram.methods.registry import build_method
    from birram.run import MODEL_FILE, load_extractor, resolve_device, settings_from
    from birram.train import make_context, prepare

    run_dir = Path(run_dir)
    if not rundir.is_sealed(run_dir):
        raise DataError(f"{run_dir} is not a finished run (it has no manifest.json)")
    rundir.verify(run_dir)
    model_file = run_dir / MODEL_FILE
    if not model_file.is_file():
        raise DataError(f"{run_dir} holds no trained model ({MODEL_FILE} is missing)")
    try:
        raw = io.read_json_strict(run_dir / "config.json")
        method_name, seed = raw.pop("method_name"), int(raw.pop("seed"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise DataError(f"{run_dir / 'config.json'} is unusable ({err})") from None
    cfg = build_config(raw)
    if cfg.target != "class":
        raise ConfigError(f"{run_dir} learnt {cfg.target}; chip sweeps score classifiers only")
    method = build_method(method_name, cfg.method, load_extractor(cfg))
    if type(method).predict is not Method.predict:
        raise ConfigError(f"{method_name} predicts with more than its model; chip sweeps "
                          f"support methods that predict with the model alone ({SUPPORTED})")
    protocol = build_protocol(cfg.data, cfg.scenario, load_dataset(cfg.data),
                              permutation_seed=seed)
    target = resolve_device(device or cfg.train.device)
    ctx = prepare(method, make_context(protocol, settings_from(cfg), seed, target))
    load_digital_state(ctx.model, model_file, target)
    ctx.task = protocol.n_tasks - 1
    ctx.model.eval()
    return method, ctx


def load_digital_state(model: nn.Module, path: Path, device: torch.device) -> None:
    """Load the entries of ``path`` that ``model`` has; every one of them must be there."""
    from safetensors.torch import load as load_tensors

    try:
        state = load_tensors(path.read_bytes())
        wanted = model.state_dict().keys()
        model.load_state_dict({k: v.to(device) for k, v in state.items() if k in wanted},
                              strict=True)
    except Exception as err:  # OSError, a shape or key mismatch, or safetensors' own error
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise DataError(f"{path} does not fit the run's model ({first})") from None


# -- figures -------------------------------------------------------------------------------------
def plot_sweep(result: dict[str, Any], path: Path, title: str, xlabel: str,
               xscale: str = "linear") -> None:
    """One line per series (mean ± s.e. over chips), the digital accuracy as a reference line;
    drift-compensated series dashed, in the colour of their temperature."""
    import matplotlib.pyplot as plt

    from birram.report import save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours: dict[str, str] = {}
    for index, series in enumerate(result["series"]):
        key = str(series.get("temp_k", index))
        colour = colours.setdefault(key, f"C{len(colours)}")
        xs = np.array([p["x"] for p in series["points"]], dtype=float)
        mean = 100 * np.array([p["mean"] for p in series["points"]], dtype=float)
        se = 100 * np.array([np.nan if p["se"] is None else p["se"] for p in series["points"]])
        ax.errorbar(xs, mean, yerr=np.nan_to_num(se), marker="o", capsize=3, color=colour,
                    linestyle="--" if series.get("drift_compensation") else "-",
                    label=series["label"])
    ax.axhline(100 * result["digital_accuracy"], color="0.3", linestyle=":",
               label=f"digital model ({100 * result['digital_accuracy']:.1f} %)")
    if "unaged" in result:
        unaged = result["unaged"]["mean"]
        ax.axhline(100 * unaged, color="0.6", linestyle="-.",
                   label=f"on the chip, just programmed ({100 * unaged:.1f} %)")
    first = result["series"][0]["points"]
    ax.set_xscale(xscale, **({"base": 2} if xscale == "log" and result["sweep"] == "levels"
                             else {}))
    ax.set_xticks([p["x"] for p in first], [p["label"] for p in first],
                  rotation=30 if result["sweep"] == "retention" else 0)
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("average accuracy over all tasks (%)")
    low, high = ax.get_ylim()  # zoomed to the data (small losses stay visible), within 0-100
    ax.set_ylim(max(0.0, low - 2.0), min(100.0, high + 2.0))
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)


FIGURES = {  # sweep -> (file name, x label, x scale)
    "levels": ("accuracy_vs_levels.png", "levels per device", "log"),
    "programming_noise": ("accuracy_vs_programming_noise.png",
                          "programming noise (x the calibrated spread)", "linear"),
    "retention": ("accuracy_vs_retention.png", "time since programming", "log"),
}


def describe_chip(chip: Mapping[str, Any], swept: str) -> str:
    """What the figure holds fixed: the chip's settings other than the swept one."""
    def bits(value: int | None) -> str:
        return "ideal" if value is None else str(value)

    parts = ["RRAM cells" if chip["cells"] == "rram" else f"{chip['cells']} cells"]
    if swept != "levels":
        parts.append("continuous levels" if chip["n_levels"] is None
                     else f"{chip['n_levels']} levels")
    if chip["dac_bits"] is None and chip["adc_bits"] is None:
        parts.append("ideal converters")
    else:
        parts.append(f"DAC/ADC {bits(chip['dac_bits'])}/{bits(chip['adc_bits'])} bits")
    if chip["read_noise"]:
        scale = chip["read_noise_scale"]
        parts.append("read noise" + (f" x{scale:g}" if scale != 1 else ""))
    if swept != "programming_noise" and chip["programming_noise_scale"] != 1:
        parts.append(f"programming noise x{chip['programming_noise_scale']:g}")
    stuck = chip["stuck_hrs_fraction"] + chip["stuck_lrs_fraction"]
    if stuck:
        parts.append(f"{100 * stuck:g} % stuck"
                     + (" (mapped around)" if chip.get("compensate_stuck") else ""))
    if chip["verify_tolerance"] is not None:
        parts.append(f"write-verify to {chip['verify_tolerance']:g} level spacing "
                     f"(at most {chip['verify_max_attempts']} attempts)")
    if swept != "retention" and chip["drift_compensation"]:
        parts.append("drift compensation")
    return ", ".join(parts)


def plot_sweeps(results: Mapping[str, dict[str, Any]], out_dir: Path, subject: str
                ) -> list[Path]:
    """The figure of every sweep in ``results`` (keyed by sweep name), into ``out_dir``."""
    paths = []
    for name, result in results.items():
        file_name, xlabel, xscale = FIGURES[name]
        chips = result["chips"]
        title = (f"{subject}: mean ± s.e. over {chips} chip{'s' if chips > 1 else ''}\n"
                 + textwrap.fill(describe_chip(result["chip"], name), 95))
        plot_sweep(result, Path(out_dir) / file_name, title, xlabel, xscale)
        paths.append(Path(out_dir) / file_name)
    return paths


def all_sweeps(method: Method, ctx: Context, base: ChipConfig, chips: int = 5,
               variability_scale: float = 1.0) -> dict[str, dict[str, Any]]:
    """The three sweeps at their default points, keyed by sweep name."""
    return {
        "levels": sweep_levels(method, ctx, base, DEFAULT_LEVELS, chips, variability_scale),
        "programming_noise": sweep_programming_noise(method, ctx, base, DEFAULT_NOISE_SCALES,
                                                     chips, variability_scale),
        "retention": sweep_retention(method, ctx, base, DEFAULT_TIMES_S,
                                     (ROOM_TEMP_K, HOT_TEMP_K), chips, variability_scale),
    }
