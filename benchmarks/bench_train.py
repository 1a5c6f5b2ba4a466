"""Training throughput of each method on a split-MNIST-shaped problem.

Runs every method for the same number of iterations per task on random 28x28 data
(5 tasks x 2 classes, batch 128, MLP 2x400; the numbers of the split MNIST protocol), and
prints iterations per second and the projected wall time of a full 5 x 2000-iteration run.
Ratios between methods measured in one run are comparable; absolute times depend on the
machine (compare them only on the same one).

    python benchmarks/bench_train.py --iters 100 --threads 2 --out benchmarks/results/train.json
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from birram import io
from birram.config import MethodConfig
from birram.data.protocols import split_protocol
from birram.data.types import ArrayDataset
from birram.methods.base import TrainSettings
from birram.methods.registry import build_method
from birram.train import make_context, prepare, train_continual

DEFAULT_METHODS = "none,ewc,si,lwf,er,icarl,dgr,rtf,bir,bir-si"


def random_images(n_per_class: int, seed: int = 0) -> ArrayDataset:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(10).repeat_interleave(n_per_class)
    x = torch.randint(0, 256, (y.numel(), 1, 28, 28), generator=gen, dtype=torch.uint8)
    return ArrayDataset("random-28x28", x, y, x[:2000], y[:2000],
                        tuple(str(c) for c in range(10)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--iters", type=int, default=100, help="iterations per task")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = random_images(600)
    settings = TrainSettings(iters=args.iters, batch_size=128, lr=1e-3, hidden=(400, 400))
    rows = []
    print(f"{'method':12s} {'it/s':>8s} {'projected 5x2000 s':>20s}")
    for name in args.methods.split(","):
        protocol = split_protocol(data, "class", 5)
        method = build_method(name, MethodConfig())
        ctx = prepare(method, make_context(protocol, settings, seed=1, device=args.device))
        start = time.perf_counter()
        state = train_continual(method, ctx)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        train_s = sum(r.seconds for r in state.records)
        rate = 5 * args.iters / train_s
        rows.append({"method": name, "iterations_per_second": rate, "wall_seconds": wall,
                     "projected_full_run_seconds": 10000 / rate})
        print(f"{name:12s} {rate:8.1f} {10000 / rate:20.0f}")
    result = {"device": args.device, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "machine": platform.machine(),
              "iters_per_task": args.iters, "rows": rows}
    if args.out:
        io.write_json(args.out, result)


if __name__ == "__main__":
    main()
