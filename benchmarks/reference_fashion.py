"""Run the authors' continual-learning code (GMvandeVen/continual-learning) on split
Fashion-MNIST: its ``splitMNIST`` experiment with MNIST replaced by Fashion-MNIST.

Runs under the reference's own Python environment (torch + torchvision); it imports nothing
from birram. Everything else is the reference's ``main.py`` with its own defaults:

    python benchmarks/reference_fashion.py --code REF_DIR --fashion-dir DIR --work WORK_DIR \
        --result OUT.json -- --experiment=splitMNIST --scenario=class --brain-inspired --seed=1

What it changes, and why:

- the dataset table entry ``MNIST`` becomes torchvision's ``FashionMNIST`` (same 28x28 shape,
  10 classes), read from the gzipped IDX files in ``--fashion-dir``, unpacked where
  torchvision expects its raw files; downloading is switched off;
- ``visual.visual_plt`` (matplotlib, used only for ``--pdf``) is replaced by an empty module,
  so the reference needs no plotting library; pass no ``--pdf``;
- torch uses one thread (``--threads``);
- the final test accuracy of every context (the evaluation ``main.py`` runs on the full test
  sets after the last context) and the training time are written to ``--result`` as JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def unpack_fashion(fashion_dir: Path, data_dir: Path) -> None:
    """Put the IDX files where torchvision's FashionMNIST(root=data_dir/'MNIST') looks."""
    raw = data_dir / "MNIST" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        target = raw / name
        if target.exists():
            continue
        source = fashion_dir / f"{name}.gz"
        if not source.is_file():
            sys.exit(f"error: {source} is missing; install Debian's dataset-fashion-mnist "
                     "or pass --fashion-dir")
        with tempfile.NamedTemporaryFile(dir=raw, delete=False) as tmp, \
                gzip.open(source, "rb") as packed:
            shutil.copyfileobj(packed, tmp)
        os.replace(tmp.name, target)


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(json.dumps(obj, indent=2, allow_nan=False))
    os.replace(tmp.name, path)


def install_patches(code: Path) -> None:
    sys.path.insert(0, str(code))
    # Plotting is only used for --pdf: an empty stand-in spares the matplotlib dependency.
    import visual

    stub = types.ModuleType("visual.visual_plt")
    sys.modules["visual.visual_plt"] = stub
    visual.visual_plt = stub  # type: ignore[attr-defined]

    from data import available  # the reference's package (its directory is on sys.path)
    from torchvision import datasets

    class LocalFashionMNIST(datasets.FashionMNIST):
        """FashionMNIST from local files only (never downloads)."""

        def __init__(self, root: str, train: bool = True, download: bool = False,
                     **kwargs: Any) -> None:
            super().__init__(root, train=train, download=False, **kwargs)

        @property
        def raw_folder(self) -> str:  # torchvision names it after the class
            return os.path.join(self.root, "FashionMNIST", "raw")

    available.AVAILABLE_DATASETS["MNIST"] = LocalFashionMNIST


def run_reference(code: Path, work: Path, main_args: list[str]) -> dict[str, Any]:
    import main as reference_main  # the reference's main.py (its directory is on sys.path)
    from eval import evaluate

    final_accs: list[float] = []
    test_acc = evaluate.test_acc

    def recording_test_acc(*args: Any, **kwargs: Any) -> float:
        acc = test_acc(*args, **kwargs)
        if kwargs.get("test_size", "unset") is None:  # main.py's final full-test-set evaluation
            final_accs.append(float(acc))
        return acc

    evaluate.test_acc = recording_test_acc

    train_seconds: list[float] = []

    def timed(train_fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = train_fn(*args, **kwargs)
            train_seconds.append(time.perf_counter() - start)
            return out
        return wrapper

    for name in ("train_cl", "train_gen_classifier", "train_fromp"):
        setattr(reference_main, name, timed(getattr(reference_main, name)))

    dirs = {"--data-dir": work / "datasets", "--results-dir": work / "results",
            "--model-dir": work / "models", "--plot-dir": work / "plots"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    sys.argv = ["main.py", *main_args, "--no-save",
                *[f"{flag}={path}" for flag, path in dirs.items()]]
    args = reference_main.handle_inputs()
    start = time.perf_counter()
    reference_main.run(args, verbose=True)
    run_seconds = time.perf_counter() - start
    if len(final_accs) != args.contexts:
        sys.exit(f"error: expected {args.contexts} final accuracies, recorded {len(final_accs)}")
    return {
        "main_args": sys.argv[1:],
        "seed": args.seed,
        "experiment": args.experiment,
        "scenario": args.scenario,
        "contexts": args.contexts,
        "iters": args.iters,
        "batch": args.batch,
        "lr": args.lr,
        "fc_layers": args.fc_lay,
        "fc_units": args.fc_units,
        "z_dim": args.z_dim,
        "dg_prop": getattr(args, "dg_prop", None),
        "active_classes": getattr(args, "neg_samples", None),
        "per_task_accuracy": final_accs,
        "average_accuracy": sum(final_accs) / len(final_accs),
        "train_seconds": sum(train_seconds),
        "run_seconds": run_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, required=True, help="the reference's work tree")
    parser.add_argument("--fashion-dir", type=Path,
                        default=Path("/usr/share/datasets/fashion-mnist"),
                        help="directory of the four gzipped Fashion-MNIST IDX files")
    parser.add_argument("--work", type=Path, required=True,
                        help="directory for the unpacked data and the reference's outputs")
    parser.add_argument("--result", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("main_args", nargs=argparse.REMAINDER,
                        help="after --: the reference main.py's own options")
    args = parser.parse_args()
    main_args = args.main_args[1:] if args.main_args[:1] == ["--"] else args.main_args
    if not (args.code / "main.py").is_file():
        sys.exit(f"error: {args.code} holds no main.py; pass the reference's work tree as --code")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    unpack_fashion(args.fashion_dir, args.work / "datasets")
    install_patches(args.code)
    result = run_reference(args.code, args.work, main_args)
    result["threads"] = torch.get_num_threads()
    write_json_atomic(args.result, result)


if __name__ == "__main__":
    main()
