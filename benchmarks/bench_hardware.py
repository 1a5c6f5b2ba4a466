"""Speed of deploying, programming and reading the split-Fashion networks on a simulated chip.

Deploys the MLP classifier (784-400-400-10) and the BI-R VAE of the same size (encoder
784-400-400 with the classifier head, z 100, gated decoder 100-400-400-784: about 1.07 M
weights, 2.1 M devices) on a chip preset, programs them, and times one analog inference pass
over 10,000 inputs (random 28x28 images: the timing does not depend on the data). Also prints
the chip's energy per inference next to the digital reference (Horowitz's 45 nm figures).

    python benchmarks/bench_hardware.py --threads 2 --out benchmarks/results/hardware_cpu.json

``--cells rram`` calibrates (or loads from the cache) the simulator's RRAM cells first; that
calibration time is reported separately and is not part of deploying.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from birram import io
from birram.hardware import (
    chip_preset,
    chip_summary,
    crossbar_layers,
    deploy,
    digital_inference_energy,
    ledger_of,
)
from birram.hardware.ideal_cells import IdealCells
from birram.models.mlp import Classifier
from birram.models.vae import ReplayVAE


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "mlp":
        return Classifier((1, 28, 28), 10, [400, 400])
    return ReplayVAE(784, 784, [400, 400], 100, torch.Generator().manual_seed(0), n_classes=10,
                     n_modes=10, n_contexts=10, gate_prop=0.5)


def run(name: str, preset: str, cells: Any, x: torch.Tensor, batch: int) -> dict[str, Any]:
    model = build(name)
    n_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    digital = {p: digital_inference_energy(model, p, "sram", example_input=x[:1])["total_j"]
               for p in ("fp32", "int8")}
    start = time.perf_counter()
    deploy(model, preset_config(preset, cells), cells)
    t_deploy = time.perf_counter() - start
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            model(x[i : i + batch])
    t_infer = time.perf_counter() - start
    summary = chip_summary(model)
    reads = ledger_of(model).totals()
    return {
        "model": name, "weights": n_weights, "devices": summary["devices"],
        "tiles": summary["tiles"], "layers_on_chip": len(crossbar_layers(model)),
        "writes": summary["writes_total"], "deploy_and_program_s": t_deploy,
        "inference_s": t_infer, "inputs": x.shape[0],
        "analog_energy_per_inference_j": summary["analog_energy_per_inference_j"],
        "read_energy_j": reads["read_energy_j"], "adc_energy_j": reads["adc_energy_j"],
        "dac_energy_j": reads["dac_energy_j"], "write_energy_j": reads["write_energy_j"],
        "digital_fp32_sram_per_inference_j": digital["fp32"],
        "digital_int8_sram_per_inference_j": digital["int8"],
    }


def preset_config(preset: str, cells: Any):
    kind = "ideal" if isinstance(cells, IdealCells) else "rram"
    return chip_preset(preset, cells=kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="rram-4bit")
    parser.add_argument("--cells", choices=("ideal", "rram"), default="rram")
    parser.add_argument("--models", default="mlp,vae")
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = chip_preset(args.preset)
    start = time.perf_counter()
    if args.cells == "rram":
        from birram.hardware.rram_cells import rram_cells

        cells: Any = rram_cells(n_levels=config.n_levels or 16)
    else:
        cells = IdealCells(n_levels=config.n_levels)
    t_cells = time.perf_counter() - start
    x = torch.rand(args.inputs, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    rows = [run(name, args.preset, cells, x, args.batch) for name in args.models.split(",")]
    print(f"cells: {args.cells} ({t_cells:.1f} s to calibrate or load), preset {args.preset}, "
          f"{args.threads} threads")
    print(f"{'model':6s} {'weights':>9s} {'devices':>9s} {'tiles':>6s} {'deploy+prog s':>14s} "
          f"{'infer s':>8s} {'analog nJ/inf':>14s} {'fp32 nJ/inf':>12s} {'int8 nJ/inf':>12s}")
    for r in rows:
        print(f"{r['model']:6s} {r['weights']:9d} {r['devices']:9d} {r['tiles']:6d} "
              f"{r['deploy_and_program_s']:14.2f} {r['inference_s']:8.2f} "
              f"{r['analog_energy_per_inference_j'] * 1e9:14.2f} "
              f"{r['digital_fp32_sram_per_inference_j'] * 1e9:12.2f} "
              f"{r['digital_int8_sram_per_inference_j'] * 1e9:12.2f}")
    total = sum(r["deploy_and_program_s"] + r["inference_s"] for r in rows)
    print(f"total deploy + program + inference: {total:.1f} s")
    if args.out:
        io.write_json(args.out, {
            "preset": args.preset, "cells": args.cells, "cells_setup_s": t_cells,
            "threads": args.threads, "batch": args.batch, "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor(),
            "results": rows, "total_s": total})


if __name__ == "__main__":
    main()
