"""Throughput of the RRAM simulator in device-time-steps per second.

A batch of devices (default 10,000, the gap + filament model with variability, ten compliance
levels) runs full DC SET/RESET cycles. Two rates are reported:

- voltage points: devices x points of the applied waveform per second (what a user asks for);
- integrator sub-steps: device x time-step updates actually computed per second (one per
  voltage point, plus the adaptive sub-steps of the devices that are switching).

Both backends run on the CPU: ``compiled`` (the fused numba kernel, float64) and ``torch``
(tensor operations over the batch, float64 and float32; the GPU path). Ratios between them are
measured in the same run.

Usage: ``python benchmarks/bench_rram.py [--devices 10000] [--cycles 2] [--device cpu|cuda]
[--backends compiled,torch] [--dtype float64,float32] [--threads N] [--out bench_rram.json]``

``--dataset`` instead times the generation of the default compliance-level dataset (no cache)
and measures its joint upper bound: an MLP (2 x 400, ReLU, Adam) trained on all levels at once,
for both input views.
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


def run(devices: int, cycles: int, device: str, dtype: torch.dtype,
        backend: str) -> dict[str, float]:
    var = Variability(scale=2.0)
    cpu_gen = torch.Generator().manual_seed(0)
    z = {k: v.to(device) for k, v in draw_normals(var.d2d, devices, cpu_gen).items()}
    torch.set_default_device(device)
    gen = torch.Generator(device=device).manual_seed(0)
    p = device_params(FILAMENT, var, z).to(dtype)
    icc = torch.logspace(-5, -3, 10, dtype=torch.float64).repeat_interleave(
        (devices + 9) // 10)[:devices].to(device)
    opts = IntegratorOptions(dtype=dtype, backend=backend)  # type: ignore[arg-type]
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
    result = {"devices": devices, "cycles": cycles, "seconds": seconds,
              "voltage_points_per_s": devices * points / seconds,
              "device_substeps_per_s": iters / seconds,
              "substeps_per_point": iters / (devices * points)}
    torch.set_default_device("cpu")
    if backend == "compiled":
        return result
    torch.set_default_device(device)
    # one full-batch step in isolation: the pure per-step cost
    b = _Batch(state.gap_m, state.width_m, state.temp_k, torch.zeros(devices, dtype=dtype),
               torch.full((devices,), 5e-7, dtype=dtype), icc.to(dtype),
               torch.empty((devices, 0), dtype=dtype))
    reps = 200
    t0 = time.perf_counter()
    for _ in range(reps):
        b.remaining.fill_(5e-7)
        _advance(p, 0.3, b, Compliance(icc), opts, gen, 1, final=False)
    if device == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - t0) / reps
    torch.set_default_device("cpu")
    return {**result, "full_batch_step_s": step_s,
            "full_batch_device_steps_per_s": devices / step_s}


def dataset_upper_bound(epochs: int = 40) -> dict[str, float]:
    from birram.rram.dataset import RRAMDatasetConfig, generate_rram_samples, to_array_dataset

    cfg = RRAMDatasetConfig()
    start = time.perf_counter()
    samples = generate_rram_samples(cfg)
    result: dict[str, float] = {"generation_s": time.perf_counter() - start,
                                "samples": float(len(samples.labels))}
    for view in ("features", "trace"):
        data = to_array_dataset(samples, view)  # type: ignore[arg-type]
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(data.x_train.shape[1], 400), torch.nn.ReLU(),
                                  torch.nn.Linear(400, 400), torch.nn.ReLU(),
                                  torch.nn.Linear(400, data.n_classes))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            for idx in torch.randperm(len(data.y_train), generator=gen).split(128):
                loss = torch.nn.functional.cross_entropy(net(data.x_train[idx]),
                                                         data.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            acc = (net(data.x_test).argmax(1) == data.y_test).float().mean().item()
        result[f"upper_bound_{view}"] = acc
        print(f"{view:>8}: joint MLP test accuracy {acc * 100:.1f} %")
    print(f"generated {int(result['samples'])} samples in {result['generation_s']:.1f} s")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backends", default="compiled,torch")
    ap.add_argument("--dtype", default="float64,float32", help="dtypes of the torch backend")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench_rram.json"))
    ap.add_argument("--dataset", action="store_true", help="dataset time and upper bound")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dataset:
        io.write_json(args.out, {"torch": torch.__version__,
                                 **dataset_upper_bound()})
        print(f"wrote {args.out}")
        return
    rows = []
    for backend in args.backends.split(","):
        if backend == "compiled" and args.device != "cpu":
            continue
        for name in ["float64"] if backend == "compiled" else args.dtype.split(","):
            result = run(args.devices, args.cycles, args.device, getattr(torch, name), backend)
            rows.append({"device": args.device, "backend": backend, "dtype": name,
                         "threads": torch.get_num_threads(), **result})
    slowest = min(r["voltage_points_per_s"] for r in rows)
    print(f"{'device':>6} {'backend':>9} {'dtype':>8} {'thr':>3} {'devices':>8} {'s':>7} "
          f"{'Mdev-pts/s':>11} {'Msubsteps/s':>12} {'vs slowest':>10}")
    for r in rows:
        print(f"{r['device']:>6} {r['backend']:>9} {r['dtype']:>8} {r['threads']:>3} "
              f"{r['devices']:>8} {r['seconds']:7.2f} {r['voltage_points_per_s'] / 1e6:11.2f} "
              f"{r['device_substeps_per_s'] / 1e6:12.2f} "
              f"{r['voltage_points_per_s'] / slowest:9.1f}x")
    io.write_json(args.out, {"machine": platform.platform(), "cpu_count": torch.get_num_threads(),
                             "torch": torch.__version__, "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
