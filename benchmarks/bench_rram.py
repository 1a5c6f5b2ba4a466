"""Throughput of the RRAM simulator in device-time-steps per second.

A batch of devices (default 10,000, the gap + filament model with variability, ten compliance
levels) runs full DC SET/RESET cycles. Two rates are reported:

- voltage points: devices x points of the applied waveform per second (what a user asks for);
- integrator steps: device x time-step updates actually computed per second (one full-batch
  step per voltage point, plus the adaptive sub-steps of the devices that are switching).

Usage: ``python benchmarks/bench_rram.py [--devices 10000] [--cycles 2] [--device cpu|cuda]
[--dtype float64|float32] [--threads N] [--out bench_rram.json]``
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from birram import io
from birram.rram.drive import Compliance, sweep_half
from birram.rram.integrate import IntegratorOptions, _advance, _Batch, initial_state, simulate
from birram.rram.params import FILAMENT
from birram.rram.variability import Variability, device_params, draw_normals


def run(devices: int, cycles: int, device: str, dtype: torch.dtype) -> dict[str, float]:
    torch.set_default_device(device)
    gen = torch.Generator(device=device).manual_seed(0)
    var = Variability(scale=2.0)
    cpu_gen = torch.Generator().manual_seed(0)
    z = {k: v.to(device) for k, v in draw_normals(var.d2d, devices, cpu_gen).items()}
    p = device_params(FILAMENT, var, z)
    icc = torch.logspace(-5, -3, 10, dtype=torch.float64).repeat_interleave(
        (devices + 9) // 10)[:devices].to(device)
    opts = IntegratorOptions(dtype=dtype)
    state = initial_state(p, devices, dtype)
    waves = [sweep_half(1.5), sweep_half(-1.6)]
    # warm-up cycle (allocations, caches), not timed
    for w in waves:
        _, state = simulate(p, w, Compliance(icc), state, gen, opts, record=())
    points = iters = 0
    start = time.perf_counter()
    for _ in range(cycles):
        for w in waves:
            trace, state = simulate(p, w, Compliance(icc), state, gen, opts,
                                    record=("current",))
            points += w.steps
            iters += trace.substeps
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    # one full-batch step in isolation: the pure per-step cost
    b = _Batch(state.gap_m, state.width_m, state.temp_k, torch.zeros(devices, dtype=dtype),
               torch.full((devices,), 5e-7, dtype=dtype), icc.to(dtype))
    reps = 200
    t0 = time.perf_counter()
    for _ in range(reps):
        b.remaining.fill_(5e-7)
        _advance(p, 0.3, b, Compliance(icc), opts, gen, 1, final=False)
    if device == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - t0) / reps
    torch.set_default_device("cpu")
    return {"devices": devices, "cycles": cycles, "seconds": seconds,
            "voltage_points_per_s": devices * points / seconds,
            "integrator_steps": iters,
            "device_steps_per_s": devices * points / seconds,
            "full_batch_step_s": step_s,
            "full_batch_device_steps_per_s": devices / step_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64,float32")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench_rram.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.dtype.split(","):
        dtype = getattr(torch, name)
        result = run(args.devices, args.cycles, args.device, dtype)
        rows.append({"device": args.device, "dtype": name, "threads": torch.get_num_threads(),
                     **result})
    header = (f"{'device':>6} {'dtype':>8} {'thr':>3} {'devices':>8} {'s':>7} "
              f"{'Mdev-pts/s':>11} {'full-step ms':>12} {'Mdev-steps/s':>13}")
    print(header)
    for r in rows:
        print(f"{r['device']:>6} {r['dtype']:>8} {r['threads']:>3} {r['devices']:>8} "
              f"{r['seconds']:7.2f} {r['voltage_points_per_s'] / 1e6:11.2f} "
              f"{r['full_batch_step_s'] * 1e3:12.3f} "
              f"{r['full_batch_device_steps_per_s'] / 1e6:13.2f}")
    io.write_json(args.out, {"machine": platform.platform(), "cpu_count": torch.get_num_threads(),
                             "torch": torch.__version__, "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
