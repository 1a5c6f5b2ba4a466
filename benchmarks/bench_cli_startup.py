"""Start-up time of the ``birram`` command line: how long the quick commands take to answer.

Runs each command ``--repeats`` times in a fresh interpreter (``python -m birram.cli ...`` from
the directory given by ``--root``, so that tree's birram is the one measured), and reports the
median and the fastest wall time next to a bare interpreter (``python -c pass``), plus whether
the command imported torch or numba. Times depend on the machine and its load; compare them only
on the same one.

    python benchmarks/bench_cli_startup.py --repeats 5 --out benchmarks/results/cli_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("--help", "methods", "presets", "protocols", "chips", "run --help")
# Printed by the child after the command: which heavy modules it ended up importing.
PROBE = ("import runpy, sys, json\n"
         "sys.argv = ['birram', *{args!r}]\n"
         "try:\n"
         "    runpy.run_module('birram.cli', run_name='__main__')\n"
         "except SystemExit:\n"
         "    pass\n"
         "sys.stderr.write('\\nHEAVY ' + json.dumps(sorted(m for m in ('torch', 'numba', "
         "'matplotlib', 'scipy') if m in sys.modules)) + '\\n')\n")


def time_once(argv: list[str], root: Path) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of one run of ``argv``."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=root, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return wall, cpu


def heavy_modules(args: list[str], root: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], cwd=root, check=True,
                          capture_output=True, text=True)
    line = [x for x in done.stderr.splitlines() if x.startswith("HEAVY ")][-1]
    return json.loads(line.removeprefix("HEAVY "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="source tree whose birram is measured (default: this one)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results "
                        "(default: benchmarks/results/cli_startup.json under --root)")
    args = parser.parse_args()
    root = args.root.resolve()
    out = args.out or root / "benchmarks" / "results" / "cli_startup.json"
    cases = [("python -c pass", [sys.executable, "-c", "pass"], None)]
    cases += [(f"birram {c}", [sys.executable, "-m", "birram.cli", *c.split()], c.split())
              for c in COMMANDS]
    print(f"{'command':22s} {'median s':>9s} {'min s':>7s} {'CPU s':>7s}  heavy imports")
    rows = []
    for label, argv, cli_args in cases:
        time_once(argv, root)  # warm the file-system cache and any on-disk compile cache
        runs = [time_once(argv, root) for _ in range(args.repeats)]
        times, cpu = [w for w, _ in runs], statistics.median(c for _, c in runs)
        heavy = heavy_modules(cli_args, root) if cli_args is not None else []
        rows.append({"command": label, "median_seconds": statistics.median(times),
                     "min_seconds": min(times), "median_cpu_seconds": cpu,
                     "times_seconds": times, "imports": heavy})
        print(f"{label:22s} {statistics.median(times):9.2f} {min(times):7.2f} {cpu:7.2f}  "
              f"{', '.join(heavy) or '-'}")
    result = {"python": platform.python_version(), "machine": platform.machine(),
              "cpus": os.cpu_count(), "repeats": args.repeats, "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
