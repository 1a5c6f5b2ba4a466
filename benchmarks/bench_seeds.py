"""Seeds as a batch dimension: one seed alone against S seeds trained as one stacked model.

For each method, on a preset's protocol: the wall time of training one seed (the first of
``--seeds``) by itself, and of training all of ``--seeds`` together (``birram.train_seeds``),
each in a fresh process (so peak memory is its own), with wall and CPU time (the CPU time
of a one-thread run barely moves with the machine's load), seed-iterations per second, peak
resident memory (and peak GPU memory on a GPU) and the final average accuracy. "S runs /
stacked" is S times the single-seed time over the stacked time: how much faster the stacked
seeds are than S separate runs one after another. Times depend on the machine and its load;
compare only figures from one invocation.

    python benchmarks/bench_seeds.py --preset rram-demo --seeds 1,2,3,4,5 --threads 1 \\
        --out benchmarks/results/seeds_rram_demo_cpu.json
    python benchmarks/bench_seeds.py --preset split-fashion-class --iters 200 --seeds 1,2,3 \\
        --threads 1 --out benchmarks/results/seeds_fashion_cpu.json

``--compile MODE`` trains with the compiled step (``train.compile``, generative replay only);
the wall time then includes the compilation (or the load from torch's on-disk cache).
``--precision bfloat16`` runs the training step's forward pass under autocast
(``train.precision``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

from birram.config import TrainConfig

DEFAULT_METHODS = "none,ewc,si,lwf,dgr,bir,bir-si"
PRECISIONS = typing.get_args(TrainConfig.model_fields["precision"].annotation)


def measure(preset: str, method: str, seeds: list[int], mode: str, iters: int | None,
            threads: int | None, device: str, data_dir: str | None = None,
            compile_mode: str | None = None, precision: str = "float32") -> dict[str, Any]:
    """Train ``method`` (one seed, or every seed stacked) and return what was measured."""
    import torch

    from birram.config import resolve
    from birram.methods.registry import build_method
    from birram.run import prepare_experiment, settings_from
    from birram.train import make_context, prepare, train_continual
    from birram.train_seeds import stack_group, train_stacked

    train: dict[str, Any] = {"device": device, "threads": threads, "precision": precision}
    if iters is not None:
        train["iters"] = iters
    if compile_mode is not None:  # the compiled step; its compilation counts in the wall time
        train.update(compile=True, compile_mode=compile_mode)
    overrides: dict[str, Any] = {"train": train, "seeds": seeds, "methods": [method]}
    if data_dir is not None:
        overrides["data"] = {"data_dir": data_dir}
    cfg = resolve(preset, overrides)
    inputs = prepare_experiment(cfg)
    settings = settings_from(cfg)

    def build():  # type: ignore[no-untyped-def]
        return build_method(method, cfg.method, inputs.extractor, target=cfg.target)

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    cpu_start = _cpu_seconds()
    if mode == "single":
        m = build()
        ctx = prepare(m, make_context(inputs.protocols[seeds[0]], settings, seeds[0], device))
        start = time.perf_counter()
        states = [train_continual(m, ctx)]
    else:
        group = stack_group(build, {s: inputs.protocols[s] for s in seeds}, settings, device)
        start = time.perf_counter()
        train_stacked(group)
        states = [run.state for run in group.runs]
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_start
    n_seeds = len(states)
    steps = cfg.train.iters * inputs.protocols[seeds[0]].n_tasks * n_seeds
    finals = [sum(s.records[-1].accuracies) / len(s.records[-1].accuracies) for s in states]
    return {
        "method": method, "mode": mode, "seeds": seeds[:n_seeds], "wall_s": wall, "cpu_s": cpu,
        "seed_iterations_per_s": steps / wall,
        "final_avg_accuracy": sum(finals) / len(finals), "per_seed_accuracy": finals,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def _cpu_seconds() -> float:
    # Process CPU time (every thread): on a shared machine it moves far less with the load
    # than the wall time does.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_subprocess(args: argparse.Namespace, method: str, mode: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--preset", args.preset, "--seeds", args.seeds,
           "--device", args.device, "--one", method, "--mode", mode]
    if args.iters is not None:
        cmd += ["--iters", str(args.iters)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    if args.data_dir is not None:
        cmd += ["--data-dir", args.data_dir]
    if args.compile is not None:
        cmd += ["--compile", args.compile]
    cmd += ["--precision", args.precision]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="rram-demo")
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--iters", type=int, default=None, help="iterations per task "
                        "(default: the preset's)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=None, help="dataset files (e.g. Fashion-MNIST "
                        "IDX files where the Debian package is not installed)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    parser.add_argument("--compile", default=None, metavar="MODE",
                        choices=("default", "reduce-overhead", "max-autotune-no-cudagraphs"),
                        help="train with the compiled step (train.compile) in torch.compile's "
                        "MODE; generative replay only")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="the training step's matrix products (train.precision)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("single", "stacked"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.one:  # a child: one measurement, printed as JSON
        print(json.dumps(measure(args.preset, args.one, seeds, args.mode, args.iters,
                                 args.threads, args.device, args.data_dir, args.compile,
                                 args.precision)))
        return
    rows = []
    s = len(seeds)
    print(f"{args.preset}, {s} seeds, device {args.device}, threads {args.threads}, "
          f"compiled step {args.compile or 'no'}, products in {args.precision}")
    print(f"{'method':8s} {'1 seed s':>9s} {f'{s} stacked s':>12s} {'ratio':>6s} "
          f"{'CPU s 1 / S':>14s} {'CPU ratio':>9s} {f'{s} runs/stacked':>14s} "
          f"{'acc 1 / stacked %':>18s} {'peak MB 1 / S':>14s}")
    for method in args.methods.split(","):
        single = in_subprocess(args, method, "single")
        stacked = in_subprocess(args, method, "stacked")
        ratio = stacked["wall_s"] / single["wall_s"]
        cpu_ratio = stacked["cpu_s"] / single["cpu_s"]
        rows.append({"method": method, "single": single, "stacked": stacked,
                     "stacked_over_single": ratio, "cpu_stacked_over_single": cpu_ratio,
                     "speedup_over_separate_runs": s / ratio,
                     "load_average_1min": os.getloadavg()[0]})
        print(f"{method:8s} {single['wall_s']:9.1f} {stacked['wall_s']:12.1f} {ratio:6.2f} "
              f"{single['cpu_s']:6.1f} / {stacked['cpu_s']:5.1f} {cpu_ratio:9.2f} "
              f"{s / ratio:14.2f} {100 * single['final_avg_accuracy']:8.1f} / "
              f"{100 * stacked['final_avg_accuracy']:5.1f} "
              f"{single['peak_rss_mb']:6.0f} / {stacked['peak_rss_mb']:.0f}")
    if args.out is not None:
        import torch

        from birram import io

        io.write_json(args.out, {
            "preset": args.preset, "seeds": seeds, "iters": args.iters, "device": args.device,
            "threads": args.threads, "compile": args.compile,
            "precision": args.precision,
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__, "rows": rows})
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
