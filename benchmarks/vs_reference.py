"""birram against the authors' reference code, side by side, on split Fashion-MNIST.

For each seed, the reference (GMvandeVen/continual-learning, its splitMNIST experiment on
Fashion-MNIST through ``benchmarks/reference_fashion.py``) and ``birram compare`` run at the
same time, each pinned to its own CPU core with one thread, so both see the same machine and
the same load. Records each side's final accuracy per task, its average, and its wall and
CPU time; prints a table and writes strict JSON (rewritten after every seed).

    python benchmarks/vs_reference.py --ref-code REF_DIR --ref-python REF_ENV/bin/python \
        --pair bir --seeds 1,2,3,4,5 --out benchmarks/results/vs_reference_bir.json

Pairs (``--pair``):

- ``bir``: the reference's ``--brain-inspired`` (class-IL, its split-MNIST defaults) against
  ``birram compare --preset split-fashion-class --methods bir`` with every setting that
  reproduces the reference's choice (docs/reference_parity.md), including its decoder-gate
  proportion for split MNIST, class-IL (0.1);
- ``gen-classifier``: the reference's ``--gen-classifier`` with the settings its compare.py
  uses (VAEs of 2 x 85 units, z 5, 1000 iterations per class) against ``--methods
  gen-classifier`` on the same preset.

``--iters N`` shortens both sides (N iterations per task) to check the harness quickly.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birram import io

REPO = Path(__file__).resolve().parents[1]
SHIM = Path(__file__).resolve().parent / "reference_fashion.py"
PRESET = "split-fashion-class"
CLASSES_PER_TASK = 2
# Every thread pool a numerical library may start: one thread each.
ONE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                          "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}


@dataclass(frozen=True)
class Pair:
    """One method on both sides: the reference's main.py options and birram's."""

    reference_args: tuple[str, ...]
    # Reference --iters from iterations per task (the generative classifier counts per class).
    reference_iters: Callable[[int], int]
    birram_method: str
    birram_sets: tuple[str, ...] = field(default_factory=tuple)


PAIRS: dict[str, Pair] = {
    "bir": Pair(
        reference_args=("--experiment=splitMNIST", "--scenario=class", "--brain-inspired"),
        reference_iters=lambda per_task: per_task,
        birram_method="bir",
        birram_sets=(
            "method.distill_t_squared=false",  # newer code: distillation not scaled by T^2
            "method.gate_draw=independent",  # each decoder unit gated with probability p
            "method.gate_prop=0.1",  # the reference's dg_prop for split MNIST, class-IL
        ),
    ),
    "gen-classifier": Pair(
        # compare.py's settings for the generative classifier (fc_units_gc, fc_lay_gc,
        # z_dim_gc; iterations divided by the classes per context).
        reference_args=("--experiment=splitMNIST", "--scenario=class", "--gen-classifier",
                        "--fc-units=85", "--fc-lay=3", "--z-dim=5", "--lr=0.001"),
        reference_iters=lambda per_task: max(1, per_task // CLASSES_PER_TASK),
        birram_method="gen-classifier",
    ),
}


# Children still running: stopped if the harness itself is stopped, so none is left behind.
RUNNING: set[subprocess.Popen[bytes]] = set()


@dataclass
class Finished:
    returncode: int
    wall_seconds: float
    cpu_seconds: float


def run_pinned(cmd: list[str], core: int, log: Path, cwd: Path) -> Finished:
    """Run ``cmd`` on one core with one thread; wall time from start to exit, and its CPU."""
    env = {**os.environ, **ONE_THREAD_ENV}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: os.sched_setaffinity(0, {core}))
        RUNNING.add(proc)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        RUNNING.discard(proc)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Finished(proc.returncode, wall, usage.ru_utime + usage.ru_stime)


def reference_command(args: argparse.Namespace, pair: Pair, seed: int,
                      work: Path) -> list[str]:
    main_args = [*pair.reference_args, f"--seed={seed}"]
    if args.iters is not None:
        main_args.append(f"--iters={pair.reference_iters(args.iters)}")
    elif pair.reference_iters(2000) != 2000:
        main_args.append(f"--iters={pair.reference_iters(2000)}")
    return [str(args.ref_python), str(SHIM), "--code", str(args.ref_code),
            "--fashion-dir", str(args.fashion_dir), "--work", str(work / "reference"),
            "--result", str(work / f"reference-seed-{seed}.json"), "--threads", "1",
            "--", *main_args]


def birram_command(args: argparse.Namespace, pair: Pair, seed: int, work: Path) -> list[str]:
    cmd = [sys.executable, "-m", "birram.cli", "compare", "--preset", PRESET,
           "--methods", pair.birram_method, "--seeds", str(seed), "--threads", "1",
           "--out", str(work / f"birram-seed-{seed}")]
    for setting in (*pair.birram_sets, *args.birram_set):
        cmd += ["--set", setting]
    if args.iters is not None:
        cmd += ["--iters", str(args.iters)]
    return cmd


def read_reference(path: Path) -> dict[str, Any]:
    result = io.read_json_strict(path)
    return {"per_task_accuracy": result["per_task_accuracy"],
            "average_accuracy": result["average_accuracy"],
            "train_seconds": result["train_seconds"],
            "settings": {k: result[k] for k in ("iters", "batch", "lr", "fc_layers", "fc_units",
                                                "z_dim", "dg_prop", "active_classes")}}


def read_birram(out_dir: Path, method: str, seed: int) -> dict[str, Any]:
    metrics = io.read_json_strict(out_dir / method / f"seed-{seed}" / "metrics.json")
    return {"per_task_accuracy": metrics["accuracy_matrix"][-1],
            "average_accuracy": metrics["average_accuracy"],
            "train_seconds": metrics["wall_seconds"]}


def mean_se(values: list[float]) -> dict[str, float | None]:
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return {"mean": mean, "se": se}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for side in ("reference", "birram"):
        summary[side] = {
            "average_accuracy": mean_se([r[side]["average_accuracy"] for r in rows]),
            "wall_seconds": mean_se([r[side]["wall_seconds"] for r in rows]),
            "cpu_seconds": mean_se([r[side]["cpu_seconds"] for r in rows]),
        }
    summary["speed_ratio_mean_wall"] = (summary["reference"]["wall_seconds"]["mean"]
                                        / summary["birram"]["wall_seconds"]["mean"])
    return summary


def fmt_se(stat: dict[str, float | None], scale: float = 1.0, digits: int = 1) -> str:
    text = f"{stat['mean'] * scale:.{digits}f}"
    return text if stat["se"] is None else f"{text} ± {stat['se'] * scale:.{digits}f}"


def print_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    print(f"\n{'seed':>4}  {'reference %':>11}  {'birram %':>8}  {'reference s':>11}  "
          f"{'birram s':>8}  {'ratio':>5}  per task % (reference | birram)")
    for r in rows:
        ref, bir = r["reference"], r["birram"]
        tasks = (" / ".join(f"{a * 100:.1f}" for a in ref["per_task_accuracy"]) + "  |  "
                 + " / ".join(f"{a * 100:.1f}" for a in bir["per_task_accuracy"]))
        print(f"{r['seed']:>4}  {ref['average_accuracy'] * 100:>11.2f}  "
              f"{bir['average_accuracy'] * 100:>8.2f}  {ref['wall_seconds']:>11.1f}  "
              f"{bir['wall_seconds']:>8.1f}  {r['speed_ratio']:>5.2f}  {tasks}")
    ref, bir = summary["reference"], summary["birram"]
    print(f"mean  {fmt_se(ref['average_accuracy'], 100):>11}  "
          f"{fmt_se(bir['average_accuracy'], 100):>8}  {fmt_se(ref['wall_seconds']):>11}  "
          f"{fmt_se(bir['wall_seconds']):>8}  {summary['speed_ratio_mean_wall']:>5.2f}")


VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def cpu_description() -> dict[str, Any]:
    """The processor, as far as Linux names it: the ratio depends on it (its matrix-product
    speed against its speed at Python and small operations), so the record keeps it."""
    model, flags = "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    caches = {}
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        with contextlib.suppress(OSError):
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            if kind != "Instruction":
                caches[f"L{level}"] = (index / "size").read_text().strip()
    return {"cpu_model": model, "cpu_flags": [f for f in VECTOR_FLAGS if f in flags],
            "cpu_caches": dict(sorted(caches.items()))}


def versions(ref_python: Path) -> dict[str, str]:
    probe = "import torch, torchvision; print(torch.__version__, torchvision.__version__)"
    out = subprocess.run([str(ref_python), "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    return {"birram_python": platform.python_version(),
            "birram_torch": importlib.metadata.version("torch"),
            "reference_torch": out[0], "reference_torchvision": out[1]}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-code", type=Path, required=True,
                        help="work tree of GMvandeVen/continual-learning")
    parser.add_argument("--ref-python", type=Path, required=True,
                        help="Python of an environment with torch and torchvision for it")
    parser.add_argument("--pair", choices=sorted(PAIRS), default="bir")
    parser.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated seeds")
    parser.add_argument("--iters", type=int, default=None,
                        help="iterations per task on both sides (default: the protocol's 2000)")
    parser.add_argument("--birram-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra birram --set on top of the pair's (repeatable)")
    parser.add_argument("--cores", default="0,1", help="reference core, birram core")
    parser.add_argument("--fashion-dir", type=Path,
                        default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--work", type=Path, default=None,
                        help="run directory for both sides' outputs and logs "
                             "(default: vs_reference-PAIR in the temporary directory)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    args = parser.parse_args()
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
        ref_core, birram_core = (int(c) for c in args.cores.split(","))
    except ValueError:
        parser.error("--seeds takes integers like 1,2,3 and --cores two core numbers like 0,1")
    if ref_core == birram_core or not {ref_core, birram_core} <= os.sched_getaffinity(0):
        parser.error(f"--cores needs two different cores among {sorted(os.sched_getaffinity(0))}")
    args.ref_core, args.birram_core = ref_core, birram_core
    if not (args.ref_code / "main.py").is_file():
        parser.error(f"--ref-code {args.ref_code} holds no main.py")
    if not args.ref_python.is_file():
        parser.error(f"--ref-python {args.ref_python} does not exist")
    if args.iters is not None and args.iters < 1:
        parser.error("--iters must be at least 1")
    if args.work is None:
        args.work = Path(tempfile.gettempdir()) / f"vs_reference-{args.pair}"
    return args


def stop_children(signum: int, _frame: Any) -> None:
    for proc in list(RUNNING):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    sys.exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, stop_children)
    signal.signal(signal.SIGINT, stop_children)
    args = parse_args()
    pair = PAIRS[args.pair]
    record: dict[str, Any] = {
        "pair": args.pair,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "protocol": f"split Fashion-MNIST, class-incremental, 5 tasks x 2 classes, "
                    f"{args.iters or 2000} iterations per task, batch 128",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), **cpu_description(),
                    "cores": {"reference": args.ref_core, "birram": args.birram_core},
                    **versions(args.ref_python)},
        "reference_args": list(pair.reference_args),
        "birram_sets": [*pair.birram_sets, *args.birram_set],
        "seeds": [],
    }
    for seed in args.seed_list:
        work = args.work
        ref_cmd = reference_command(args, pair, seed, work)
        bir_cmd = birram_command(args, pair, seed, work)
        load_before = os.getloadavg()[0]
        with ThreadPoolExecutor(max_workers=2) as pool:
            ref_job = pool.submit(run_pinned, ref_cmd, args.ref_core,
                                  work / f"reference-seed-{seed}.log", args.ref_code)
            bir_job = pool.submit(run_pinned, bir_cmd, args.birram_core,
                                  work / f"birram-seed-{seed}.log", REPO)
            ref_done, bir_done = ref_job.result(), bir_job.result()
        for side, done in (("reference", ref_done), ("birram", bir_done)):
            if done.returncode != 0:
                log = work / f"{side}-seed-{seed}.log"
                sys.exit(f"error: the {side} run of seed {seed} exited with "
                         f"{done.returncode}; see {log}")
        ref = read_reference(work / f"reference-seed-{seed}.json")
        bir = read_birram(work / f"birram-seed-{seed}", pair.birram_method, seed)
        row = {
            "seed": seed,
            "reference": {**ref, "wall_seconds": ref_done.wall_seconds,
                          "cpu_seconds": ref_done.cpu_seconds, "command": shlex.join(ref_cmd)},
            "birram": {**bir, "wall_seconds": bir_done.wall_seconds,
                       "cpu_seconds": bir_done.cpu_seconds, "command": shlex.join(bir_cmd)},
            "speed_ratio": ref_done.wall_seconds / bir_done.wall_seconds,
            "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        }
        record["seeds"].append(row)
        record["summary"] = summarise(record["seeds"])
        io.write_json(args.out, record)
        print(f"seed {seed}: reference {ref['average_accuracy'] * 100:.2f} % in "
              f"{ref_done.wall_seconds:.0f} s, birram {bir['average_accuracy'] * 100:.2f} % in "
              f"{bir_done.wall_seconds:.0f} s", flush=True)
    print_table(record["seeds"], record["summary"])
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
