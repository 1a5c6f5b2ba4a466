"""The on-chip part of an experiment's report: accuracy on the devices, energy, writes, memory.

Reads every ``hardware.json`` of a run directory and writes ``hardware_summary.json`` and
``hardware.md`` (a table per method, mean and standard error over chip instances).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from birram import io
from birram.config import RunConfig
from birram.metrics import mean_and_standard_error

CONVENTIONAL = ("none", "ewc", "online-ewc", "si", "lwf")


def hardware_files(out_dir: Path, method: str, seeds: list[int]) -> list[Path]:
    files: list[Path] = []
    for seed in seeds:
        seed_dir = out_dir / method / f"seed-{seed}"
        files += sorted(seed_dir.glob("hardware.json")) + sorted(seed_dir.glob("chip-*/"
                                                                               "hardware.json"))
    return files


def summarise_method(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool every chip instance of every seed of one method."""
    device = [a for r in records for a in r["device_average_accuracy"]]
    digital = [r["digital_average_accuracy"] for r in records]
    mean, se = mean_and_standard_error(device)
    writes = np.array([w for r in records for w in r["writes_per_task"]], dtype=float)
    write_j = np.array([w for r in records for w in r["write_energy_per_task_j"]], dtype=float)
    read_j = np.array([w for r in records for w in r["read_energy_per_task_j"]], dtype=float)
    energy = {k: float(np.mean([r["energy_per_inference"][k] for r in records]))
              for k in records[0]["energy_per_inference"]}
    return {
        "device_accuracy_mean": mean,
        "device_accuracy_se": None if math.isnan(se) else se,
        "device_accuracy_per_chip": device,
        "digital_accuracy_mean": float(np.mean(digital)),
        "gap_points": 100 * (float(np.mean(digital)) - mean),
        "writes_per_task": writes.mean(0).tolist(),
        "write_energy_per_task_j": write_j.mean(0).tolist(),
        "training_read_energy_per_task_j": read_j.mean(0).tolist(),
        "writes_max_per_device": int(max(m for r in records
                                          for m in r["writes_max_per_device"])),
        "writes_mean_per_device": float(np.mean([m for r in records
                                                 for m in r["writes_mean_per_device"]])),
        "devices": int(records[0]["devices"]),
        "energy_per_inference": energy,
        "bytes_kept_between_tasks": int(np.mean([r["bytes_kept_between_tasks"]
                                                 for r in records])),
        "chip_instances": len(device),
    }


def summarise(out_dir: Path, cfg: RunConfig) -> dict[str, Any]:
    methods = {}
    for name in cfg.methods:
        records = [io.read_json_strict(p) for p in hardware_files(out_dir, name, cfg.seeds)]
        if records:
            methods[name] = summarise_method(records)
    hw = cfg.hardware
    assert hw is not None
    out: dict[str, Any] = {"chip": hw.chip, "changes": hw.changes, "mode": hw.mode,
                           "methods": methods}
    best = [methods[m]["device_accuracy_mean"] for m in CONVENTIONAL if m in methods]
    if "bir" in methods and best and max(best) > 0:
        out["bir_over_best_conventional"] = methods["bir"]["device_accuracy_mean"] / max(best)
    return out


def _kilo(n: float) -> str:
    return f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


HEADER = ["method", "digital acc %", "on-device acc % (± s.e.)", "gap (points)",
          "energy / inference, analog vs digital fp32 (nJ)", "writes per task",
          "write energy per task (nJ)", "writes per device, max / mean", "kept between tasks"]


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, m in summary["methods"].items():
        se = m["device_accuracy_se"]
        e = m["energy_per_inference"]
        rows.append([
            name,
            f"{100 * m['digital_accuracy_mean']:.1f}",
            f"{100 * m['device_accuracy_mean']:.1f}" + ("" if se is None
                                                         else f" ± {100 * se:.1f}"),
            f"{m['gap_points']:+.1f}",
            f"{1e9 * e['analog_inference_energy_j']:.2f} vs "
            f"{1e9 * e['digital_fp32_sram_j']:.0f}",
            " / ".join(_kilo(w) for w in m["writes_per_task"]),
            " / ".join(f"{1e9 * j:.0f}" for j in m["write_energy_per_task_j"]),
            f"{m['writes_max_per_device']} / {m['writes_mean_per_device']:.2f}",
            _bytes(m["bytes_kept_between_tasks"]),
        ])
    return rows


def _bytes(n: int) -> str:
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    if "bir_over_best_conventional" in summary:
        lines += ["", f"BI-R on the devices: {summary['bir_over_best_conventional']:.2f}x the "
                  "best conventional method (none, EWC, online EWC, SI, LwF)."]
    return "\n".join(lines) + "\n"


def section(cfg: RunConfig, summary: dict[str, Any], heading: str = "#") -> str:
    """The on-chip results as Markdown under a heading of level ``heading``."""
    hw = cfg.hardware
    assert hw is not None
    return (f"{heading} On the chip: {hw.chip} ({hw.mode})\n\n"
            f"{len(cfg.seeds)} training seed(s); accuracy on the devices is the mean over "
            "every chip instance (device-variability draw) ± its standard error.\n\n"
            + markdown(summary))


def write_hardware_report(out_dir: Path, cfg: RunConfig) -> dict[str, Any]:
    summary = summarise(out_dir, cfg)
    io.write_json(out_dir / "hardware_summary.json", summary)
    io.write_text(out_dir / "hardware.md", section(cfg, summary))
    return summary
