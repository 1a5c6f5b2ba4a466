"""How much of training is matrix products: the floor a faster loop cannot go below.

Trains one method on the first ``--tasks`` tasks of a preset twice with the same seed: once
timed as it is, once with every matrix product recorded (operator, shapes and strides, so a
product with a transposed weight is replayed as one). Then it replays the recorded products
alone, on fresh tensors of the same layout, and times them. The share ``products / training``
says how much of the loop is arithmetic the math library does; the rest (elementwise work,
the optimiser, data gathering, Python) is all that a leaner loop could remove, so
``1 / share`` bounds the speed-up any loop running on the same library could reach.

Both timings run in this one process, one after the other, on one thread by default; repeat
with ``--repeats`` and compare the medians. Other load on the machine moves both alike.

    python benchmarks/step_anatomy.py --preset split-fashion-class --method bir --iters 300 \\
        --out benchmarks/results/step_anatomy_bir.json
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

PRODUCTS = ("mm", "addmm", "bmm", "baddbmm")

Signature = tuple[str, tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]]


def train_once(preset: str, method: str, iters: int, tasks: int, seed: int,
               threads: int, record: bool) -> tuple[float, Counter[Signature]]:
    """Seconds spent training (the loop's own per-task clocks) and, with ``record``, the
    count of every matrix-product signature the run dispatched."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from birram.config import resolve
    from birram.methods.registry import build_method
    from birram.run import prepare_experiment, settings_from
    from birram.train import make_context, prepare, train_continual

    cfg = resolve(preset, {"train": {"iters": iters, "threads": threads}, "seeds": [seed]})
    inputs = prepare_experiment(cfg)
    torch.set_num_threads(threads)
    protocol = inputs.protocols[seed]
    protocol = replace(protocol, tasks=protocol.tasks[:tasks])
    built = build_method(method, cfg.method, inputs.extractor, target=cfg.target)
    ctx = prepare(built, make_context(protocol, settings_from(cfg), seed))
    seen: Counter[Signature] = Counter()

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            name = func.overloadpacket.__name__
            if name in PRODUCTS:
                layout = tuple((tuple(a.shape), tuple(a.stride())) for a in args
                               if isinstance(a, torch.Tensor))
                seen[(name, layout)] += 1
            return func(*args, **(kwargs or {}))

    with Recorder() if record else contextlib.nullcontext():
        state = train_continual(built, ctx)
    return sum(r.seconds for r in state.records), seen


def replay_products(seen: Counter[Signature], copies: int = 8) -> float:
    """Seconds to run every recorded product as many times as the run did, on tensors laid
    out as the originals, made before the clock. Each call takes the next of ``copies`` sets
    of operands, so that (with the default) the operands are not all warm in the CPU's caches,
    as a loop's fresh activations are not."""
    import torch

    work = []
    for (name, layout), count in seen.items():
        sets = [[torch.empty_strided(shape, stride).normal_() for shape, stride in layout]
                for _ in range(copies)]
        work.append((getattr(torch.ops.aten, name).default, sets, count))
    for op, sets, _ in work:  # warm the library's kernels
        op(*sets[0])
    start = time.perf_counter()
    for op, sets, count in work:
        for k in range(count):
            op(*sets[k % copies])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="split-fashion-class")
    parser.add_argument("--method", default="bir")
    parser.add_argument("--iters", type=int, default=300, help="iterations per task")
    parser.add_argument("--tasks", type=int, default=3, help="first N tasks of the protocol")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)

    train_once(args.preset, args.method, min(args.iters, 5), args.tasks, args.seed,
               args.threads, record=False)  # load data, warm caches
    _, seen = train_once(args.preset, args.method, args.iters, args.tasks, args.seed,
                         args.threads, record=True)
    training, products = [], []
    for _ in range(args.repeats):
        training.append(train_once(args.preset, args.method, args.iters, args.tasks,
                                   args.seed, args.threads, record=False)[0])
        products.append(replay_products(seen))
    t_train, t_prod = statistics.median(training), statistics.median(products)
    flop = 0
    for (_, layout), count in seen.items():
        shapes = [shape for shape, _ in layout]
        a, b = shapes[-2], shapes[-1]  # addmm/baddbmm: (bias, a, b)
        batch = a[0] if len(a) == 3 else 1
        flop += 2 * batch * a[-2] * a[-1] * b[-1] * count
    result: dict[str, Any] = {
        "preset": args.preset, "method": args.method, "iters": args.iters,
        "tasks": args.tasks, "seed": args.seed, "threads": args.threads,
        "training_seconds": training, "products_seconds": products,
        "products_share": t_prod / t_train, "max_speedup_on_this_library": t_train / t_prod,
        "product_calls": sum(seen.values()), "product_gflop": flop / 1e9,
        "products_gflop_per_s": flop / t_prod / 1e9,
    }
    print(f"{args.method} on {args.preset}, {args.tasks} tasks x {args.iters} iterations, "
          f"{args.threads} thread(s), median of {args.repeats}:")
    print(f"  training            {t_train:8.2f} s")
    print(f"  its matrix products {t_prod:8.2f} s  ({result['product_calls']} calls, "
          f"{result['product_gflop']:.0f} GFLOP at {result['products_gflop_per_s']:.0f} GFLOP/s)")
    print(f"  products' share     {result['products_share']:8.1%}  -> a loop with nothing but "
          f"them would be {result['max_speedup_on_this_library']:.2f}x faster")
    if args.out is not None:
        from birram import io

        args.out.parent.mkdir(parents=True, exist_ok=True)
        io.write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
