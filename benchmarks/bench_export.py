"""Exported models against the trained ones: ONNX parity and int8 accuracy, from run directories.

Reads ``export.json`` of every (method, seed) in the experiment directories given (written by
``--export``) and prints one row each: the ONNX model's largest score difference from torch
(next to the largest score), its largest probability difference, the share of predictions that
agree, and the accuracy (mean over tasks, after the last task) of torch, ONNX fp32 and ONNX int8,
with the file sizes.

    birram compare --preset rram-demo --methods none,bir --seeds 1 --export --threads 1 \
        --out CLASS_DIR
    python benchmarks/bench_export.py CLASS_DIR \
        --out benchmarks/results/export_rram_demo.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def rows_of(experiment: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(experiment.glob("*/seed-*/export.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        onnx, int8 = report["formats"]["onnx"], report["formats"]["onnx_int8"]
        rows.append({
            "experiment": str(experiment), "method": path.parent.parent.name,
            "seed": int(path.parent.name.removeprefix("seed-")), "scenario": report["scenario"],
            "inputs": report["inputs"], "test_samples": report["test_samples"],
            "max_abs_score": report["max_abs_score"],
            "onnx_max_abs_difference": onnx["max_abs_difference"],
            "onnx_max_abs_difference_probabilities": onnx["max_abs_difference_probabilities"],
            "onnx_predictions_agree": onnx["predictions_agree"],
            "onnx_within_tolerance": onnx["within_tolerance"],
            "int8_predictions_agree": int8["predictions_agree"],
            "accuracy": report["accuracy"],
            "bytes": {"pt2": report["formats"].get("pt2", {}).get("bytes"),
                      "onnx": onnx["bytes"], "onnx_int8": int8["bytes"]},
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the rows")
    args = parser.parse_args()
    rows = [row for experiment in args.experiments for row in rows_of(experiment)]
    print("| method | scenario | ONNX max abs score diff (max abs score) | max abs prob diff | "
          "ONNX = torch predictions | acc torch / ONNX fp32 / ONNX int8 % | int8 = fp32 "
          "predictions | kB pt2 / onnx / int8 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc, kb = r["accuracy"], {k: (v or 0) / 1000 for k, v in r["bytes"].items()}
        print(f"| {r['method']} | {r['scenario']} | {r['onnx_max_abs_difference']:.2g} "
              f"({r['max_abs_score']:.3g}) | {r['onnx_max_abs_difference_probabilities']:.2g} | "
              f"{100 * r['onnx_predictions_agree']:.2f} % | {100 * acc['torch_fp32']:.2f} / "
              f"{100 * acc['onnx_fp32']:.2f} / {100 * acc['onnx_int8']:.2f} | "
              f"{100 * r['int8_predictions_agree']:.2f} % | {kb['pt2']:.0f} / {kb['onnx']:.0f} / "
              f"{kb['onnx_int8']:.0f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
